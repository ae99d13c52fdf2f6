"""Safe parsing of rate and observable expressions.

Expressions in spec files are untrusted text. They are parsed with :func:`ast.parse` (which only builds a
syntax tree and runs nothing) and the tree is translated node by node into sympy, accepting only a
whitelist: numbers, the names the caller declares, ``+ - * / **``, unary minus, parentheses, the
functions in :data:`FUNCTIONS` and the conditional ``piecewise(v1, c1, v2, c2, ..., otherwise)`` (the value
of the first true condition, else ``otherwise``). Conditions, allowed only as the conditions of
``piecewise``, are comparisons (``< <= > >= == !=``, chains such as ``0 < x < 1``), ``and``, ``or``,
``not``, parentheses and ``True``/``False``. Attribute access, subscripts, calls of anything else,
keywords, strings, lambdas, comprehensions and every other construct are rejected before any of it is
evaluated; ``sympify`` and ``eval`` are never used.

:func:`format_expression` is the inverse: sympy -> text in this language, so that
``parse_expression(format_expression(e)) == e`` for the expressions the parser builds.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from typing import Any

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
    "tan": (sp.tan, 1),
    "asin": (sp.asin, 1),
    "acos": (sp.acos, 1),
    "atan": (sp.atan, 1),
    "sinh": (sp.sinh, 1),
    "cosh": (sp.cosh, 1),
    "asinh": (sp.asinh, 1),
    "acosh": (sp.acosh, 1),
    "atanh": (sp.atanh, 1),
    "floor": (sp.floor, 1),
    "ceil": (sp.ceiling, 1),
    "sign": (sp.sign, 1),
}
#: The conditional function (see the module docstring); its conditions use :data:`COMPARISONS`.
PIECEWISE = "piecewise"
COMPARISONS: dict[type, Any] = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge, ast.Eq: sp.Eq,
                                ast.NotEq: sp.Ne}

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
            if isinstance(node.func, ast.Name) and node.func.id == PIECEWISE and PIECEWISE not in self.symbols:
                return self._piecewise(node, depth)
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else _short(ast.unparse(node.func))
                raise _fail(self.text, f"call of {name!r} not allowed (allowed: {', '.join(FUNCTIONS)}, "
                                       f"{PIECEWISE})")
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
        if isinstance(node, (ast.Compare, ast.BoolOp)) or (isinstance(node, ast.UnaryOp)
                                                          and isinstance(node.op, ast.Not)):
            raise _fail(self.text, "a condition is allowed only as a condition of piecewise()")
        raise _fail(self.text, f"{type(node).__name__} not allowed")

    def _piecewise(self, node: ast.Call, depth: int) -> sp.Expr:
        """piecewise(v1, c1, v2, c2, ..., otherwise): the first vi whose ci holds, else otherwise."""
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise _fail(self.text, "piecewise() takes plain positional arguments")
        args = node.args
        if len(args) < 3 or len(args) % 2 == 0:
            raise _fail(self.text, "piecewise() takes value, condition pairs and a final otherwise value "
                                   f"(an odd number >= 3 of arguments), got {len(args)}")
        pieces = [(self.visit(args[i], depth + 1), self.condition(args[i + 1], depth + 1))
                  for i in range(0, len(args) - 1, 2)]
        pieces.append((self.visit(args[-1], depth + 1), sp.true))
        return sp.Piecewise(*pieces)

    def condition(self, node: ast.AST, depth: int) -> Any:
        """A condition: comparisons, and/or/not, True/False (sympy Boolean)."""
        if depth > MAX_DEPTH:
            raise _fail(self.text, "expression nested too deeply")
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return sp.true if node.value else sp.false
        if isinstance(node, ast.Compare):
            operands = [self.visit(node.left, depth + 1)] + [self.visit(c, depth + 1) for c in node.comparators]
            parts = []
            for k, op in enumerate(node.ops):
                if type(op) not in COMPARISONS:
                    raise _fail(self.text, f"comparison {type(op).__name__} not allowed")
                parts.append(COMPARISONS[type(op)](operands[k], operands[k + 1]))
            return sp.And(*parts)
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v, depth + 1) for v in node.values]
            return sp.And(*parts) if isinstance(node.op, ast.And) else sp.Or(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sp.Not(self.condition(node.operand, depth + 1))
        raise _fail(self.text, "a piecewise() condition must be a comparison, and/or/not of comparisons, "
                               "True or False")

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


# ----------------------------------------------------------------------------------------------------
# sympy -> text
# ----------------------------------------------------------------------------------------------------

_FORMAT_NAMES: dict[Any, str] = {fn: name for name, (fn, _) in FUNCTIONS.items() if name not in ("min", "max", "pow")}
_RELATION_TEXT = {sp.StrictLessThan: "<", sp.LessThan: "<=", sp.StrictGreaterThan: ">", sp.GreaterThan: ">=",
                  sp.Equality: "==", sp.Unequality: "!="}


def format_expression(expr: Any) -> str:
    """The text of a sympy expression in the language of :func:`parse_expression` (its inverse).

    Numbers are written exactly (integers, ``(p/q)`` for rationals, ``repr`` of floats); every symbol must
    be a plain name. Raises :class:`ExpressionError` for anything the language cannot express."""
    return _Formatter().text(sp.sympify(expr))


class _Formatter:
    def text(self, e: Any) -> str:
        if isinstance(e, sp.Symbol):
            return e.name
        if e is sp.true or e is sp.false:
            return "True" if e is sp.true else "False"
        if e.is_Integer:
            return str(int(e)) if e >= 0 else f"({int(e)})"
        if e.is_Rational:
            return f"({int(e.p)}/{int(e.q)})"
        if e.is_Float:
            value = float(e)
            if not math.isfinite(value):
                raise ExpressionError(f"non-finite number {e} cannot be written")
            return repr(value) if value >= 0 else f"({value!r})"
        if e is sp.E:
            return "exp(1)"
        if e.is_NumberSymbol:  # pi and friends: their double value
            return repr(float(e))
        if e.is_Add:  # every term binds tighter than +
            return " + ".join(self.text(a) for a in _ordered(e.args))
        if e.is_Mul and e.args[0] == -1:
            return f"-{self.operand(sp.Mul(*e.args[1:]))}"
        if e.is_Mul:
            num = [a for a in _ordered(e.args) if not (a.is_Pow and a.exp.is_Number and a.exp < 0)]
            den = [1 / a for a in _ordered(e.args) if a.is_Pow and a.exp.is_Number and a.exp < 0]
            top = " * ".join(self.operand(a) for a in num) if num else "1"
            if not den:
                return top
            bottom = self.operand(den[0]) if len(den) == 1 else f"({' * '.join(self.operand(a) for a in den)})"
            return f"{top} / {bottom}"
        if e.is_Pow:
            base, ex = e.args
            if ex == sp.Rational(1, 2):
                return f"sqrt({self.text(base)})"
            if ex == -1:
                return f"1 / {self.operand(base)}"
            return f"{self.operand(base)} ** {self.operand(ex)}"
        if isinstance(e, (sp.Min, sp.Max)):
            name = "min" if isinstance(e, sp.Min) else "max"
            return f"{name}({', '.join(self.text(a) for a in _ordered(e.args))})"
        if isinstance(e, sp.Piecewise):
            parts: list[str] = []
            otherwise = None
            for value, cond in e.args:
                if cond is sp.true:
                    otherwise = self.text(value)
                    break
                parts += [self.text(value), self.condition(cond)]
            if otherwise is None:
                raise ExpressionError("a piecewise expression without an otherwise value cannot be written")
            return f"{PIECEWISE}({', '.join([*parts, otherwise])})"
        if e.func in _FORMAT_NAMES and len(e.args) == 1:
            return f"{_FORMAT_NAMES[e.func]}({self.text(e.args[0])})"
        raise ExpressionError(f"{type(e).__name__} cannot be written in the expression language")

    def operand(self, e: Any) -> str:
        """``e`` as an operand of an arithmetic operator: parenthesised unless atomic."""
        text = self.text(e)
        if isinstance(e, sp.Symbol) or (e.is_Number and e >= 0 and not (e.is_Rational and not e.is_Integer)) \
                or isinstance(e, (sp.Min, sp.Max, sp.Piecewise)) or (e.func in _FORMAT_NAMES and len(e.args) == 1) \
                or e is sp.E or (text.startswith("(") and _balanced_outer(text)):
            return text
        return f"({text})"

    def condition(self, c: Any) -> str:
        if c is sp.true or c is sp.false:
            return "True" if c is sp.true else "False"
        if type(c) in _RELATION_TEXT:
            return f"{self.operand(c.lhs)} {_RELATION_TEXT[type(c)]} {self.operand(c.rhs)}"
        if isinstance(c, (sp.And, sp.Or)):
            word = " and " if isinstance(c, sp.And) else " or "
            return word.join(f"({self.condition(a)})" for a in _ordered(c.args))
        if isinstance(c, sp.Not):
            return f"not ({self.condition(c.args[0])})"
        raise ExpressionError(f"condition {type(c).__name__} cannot be written in the expression language")


def _ordered(args: Iterable[Any]) -> list[Any]:
    """Arguments in sympy's canonical print order (stable text for equal expressions)."""
    return sorted(args, key=sp.default_sort_key)


def _balanced_outer(text: str) -> bool:
    """Whether ``text`` is one parenthesised group ``( ... )``."""
    depth = 0
    for k, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k < len(text) - 1:
            return False
    return depth == 0
