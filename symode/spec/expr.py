"""Safe parsing of rate and observable expressions.

Expressions in spec files are untrusted text. They are parsed with :func:`ast.parse` (which only builds a
syntax tree and runs nothing) and the tree is translated node by node into sympy, accepting only a
whitelist: numbers, the names the caller declares, ``+ - * / **``, unary minus, parentheses and the
functions in :data:`FUNCTIONS`. Attribute access, subscripts, calls of anything else, keywords, strings,
lambdas, comprehensions and every other construct are rejected before any of it is evaluated; ``sympify``
and ``eval`` are never used.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping

import sympy as sp

from symode.errors import ExpressionError

#: Functions allowed in expressions, with their arity (None: two or more arguments).
FUNCTIONS: dict[str, tuple[object, int | None]] = {
    "exp": (sp.exp, 1),
    "log": (sp.log, 1),
    "sqrt": (sp.sqrt, 1),
    "abs": (sp.Abs, 1),
    "tanh": (sp.tanh, 1),
    "sin": (sp.sin, 1),
    "cos": (sp.cos, 1),
    "min": (sp.Min, None),
    "max": (sp.Max, None),
    "pow": (sp.Pow, 2),
}

MAX_LENGTH = 4000
MAX_DEPTH = 60
MAX_EXPONENT = 64


def _fail(text: str, msg: str) -> ExpressionError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return ExpressionError(f"{msg} in expression {shown!r}")


def parse_expression(text: str, symbols: Mapping[str, sp.Symbol] | Iterable[str]) -> sp.Expr:
    """Parse ``text`` into a sympy expression over the given symbols, or raise :class:`ExpressionError`.

    ``symbols`` maps allowed names to sympy symbols (or is an iterable of allowed names, then plain
    symbols are made). Nothing in ``text`` is ever executed.
    """
    if not isinstance(text, str):
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return sp.Float(text)
        raise ExpressionError(f"expected an expression string, got {type(text).__name__}")
    if not isinstance(symbols, Mapping):
        symbols = {name: sp.Symbol(name, real=True) for name in symbols}
    if len(text) > MAX_LENGTH:
        raise _fail(text, f"expression longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise _fail(text, f"syntax error ({exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise _fail(text, "expression nested too deeply") from None
    result = _Translator(text, symbols).visit(tree.body, 0)
    if result.has(sp.zoo, sp.oo, sp.nan, sp.I):
        raise _fail(text, "expression has a non-finite or complex constant")
    return result


class _Translator:
    def __init__(self, text: str, symbols: Mapping[str, sp.Symbol]) -> None:
        self.text = text
        self.symbols = symbols

    def visit(self, node: ast.AST, depth: int) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise _fail(self.text, "expression nested too deeply")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _fail(self.text, f"constant {value!r} is not a number")
            if isinstance(value, int):
                if abs(value) > 10**15:
                    raise _fail(self.text, "integer constant too large")
                return sp.Integer(value)
            if not math.isfinite(value):
                raise _fail(self.text, "number out of range")
            return sp.Float(value)
        if isinstance(node, ast.Name):
            if node.id in self.symbols:
                return self.symbols[node.id]
            if node.id in FUNCTIONS:
                raise _fail(self.text, f"function {node.id!r} used without arguments")
            raise _fail(self.text, f"unknown symbol {node.id!r}")
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            raise _fail(self.text, f"operator {type(node.op).__name__} not allowed")
        if isinstance(node, ast.BinOp):
            # A left-associated chain a + b - c * d ... counts as one level of nesting (iterated, not recursed),
            # so long flat sums are accepted while the recursion depth stays bounded.
            if isinstance(node.op, ast.Pow):
                return self._power(self.visit(node.left, depth + 1), self.visit(node.right, depth + 1))
            chain: list[ast.BinOp] = []
            cur: ast.expr = node
            while isinstance(cur, ast.BinOp) and not isinstance(cur.op, ast.Pow):
                chain.append(cur)
                cur = cur.left
            result = self.visit(cur, depth + 1)
            for link in reversed(chain):
                result = self._binop(link.op, result, self.visit(link.right, depth + 1))
            return result
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else _short(ast.unparse(node.func))
                raise _fail(self.text, f"call of {name!r} not allowed (allowed: {', '.join(FUNCTIONS)})")
            if node.keywords:
                raise _fail(self.text, "keyword arguments not allowed")
            func, arity = FUNCTIONS[node.func.id]
            args = [self.visit(a, depth + 1) for a in node.args]
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise _fail(self.text, "starred arguments not allowed")
            if (arity is not None and len(args) != arity) or (arity is None and len(args) < 2):
                want = arity if arity is not None else "at least 2"
                raise _fail(self.text, f"{node.func.id}() takes {want} argument(s), got {len(args)}")
            if node.func.id == "pow":
                return self._power(*args)
            return func(*args)  # type: ignore[operator]
        raise _fail(self.text, f"{type(node).__name__} not allowed")

    def _binop(self, op: ast.operator, left: sp.Expr, right: sp.Expr) -> sp.Expr:
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            if right.is_zero:
                raise _fail(self.text, "division by zero")
            return left / right
        raise _fail(self.text, f"operator {type(op).__name__} not allowed")

    def _power(self, base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
        for part in (base, exponent):
            if part.is_number and not part.is_extended_real:
                raise _fail(self.text, "constant in a power is not real")
        try:
            if exponent.is_number and abs(float(exponent)) > MAX_EXPONENT:
                raise _fail(self.text, f"constant exponent larger than {MAX_EXPONENT}")
        except (TypeError, ValueError, OverflowError):
            raise _fail(self.text, "constant exponent is not a finite real number") from None
        if base.is_number and exponent.is_number:
            try:
                value = float(base) ** float(exponent)
            except (OverflowError, ZeroDivisionError, TypeError, ValueError):
                raise _fail(self.text, "constant power out of range") from None
            if isinstance(value, complex):
                raise _fail(self.text, "constant power is not real")
            return sp.Float(value)
        return sp.Pow(base, exponent)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def free_names(expr: sp.Expr) -> set[str]:
    """Names of the free symbols of a parsed expression."""
    return {s.name for s in expr.free_symbols}
