"""PEtab math (observable, noise and condition formulas) -> sympy, by a whitelist parser.

The text is split into tokens by one regular expression and parsed by recursive descent; nothing is
evaluated and ``sympify`` is never used. The grammar is PEtab's (highest precedence first):

    ( )  f(...)          parentheses, function calls
    ^                    power (right-associative; ``**`` is accepted too)
    + - (unary)  !       sign, logical not
    * /
    + -
    < <= > >=
    == !=
    &&
    ||

Numbers (``1``, ``2.5``, ``.5``, ``1e-3``), names (``[A-Za-z_][A-Za-z0-9_]*``), ``true``/``false`` and the
functions of :data:`FUNCTIONS` plus ``log(x)`` / ``log(x, base)`` and ``piecewise(v1, c1, ..., otherwise)``.
A boolean used as a number is 1 or 0, a number used as a condition is ``x != 0`` (as PEtab defines).
Names are turned into symbols by the caller's ``resolve(name)``, which may refuse them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sympy as sp

from symode.errors import ExpressionError

MAX_LENGTH = 20000
MAX_DEPTH = 200

_TOKEN = re.compile(r"""\s*(?:
    (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|<=|>=|==|!=|&&|\|\||[-+*/^()<>!,])
)""", re.VERBOSE)


def _recip(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: 1 / f(x)


def _of_recip(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: f(1 / x)


#: Functions of one argument (PEtab names; the reciprocal trigonometric ones are written through the basic ones).
FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "exp": sp.exp, "ln": sp.log, "log10": lambda x: sp.log(x) / sp.log(10), "log2": lambda x: sp.log(x) / sp.log(2),
    "sqrt": sp.sqrt, "abs": sp.Abs, "sign": sp.sign, "floor": sp.floor, "ceil": sp.ceiling,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sec": _recip(sp.cos), "csc": _recip(sp.sin), "cot": _recip(sp.tan),
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "sech": _recip(sp.cosh), "csch": _recip(sp.sinh),
    "coth": _recip(sp.tanh), "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "arcsec": _of_recip(sp.acos),
    "arccsc": _of_recip(sp.asin), "arccot": _of_recip(sp.atan), "arcsinh": sp.asinh, "arccosh": sp.acosh,
    "arctanh": sp.atanh, "arcsech": _of_recip(sp.acosh), "arccsch": _of_recip(sp.asinh),
    "arccoth": _of_recip(sp.atanh),
}
#: Functions of two arguments.
BINARY: dict[str, Callable[[Any, Any], Any]] = {"pow": sp.Pow, "min": sp.Min, "max": sp.Max}
RESERVED = {"true", "false", "inf", "nan", "piecewise", "log", *FUNCTIONS, *BINARY}


def parse_petab_math(text: str | float, resolve: Callable[[str], sp.Expr]) -> sp.Expr:
    """Parse a PEtab formula into a sympy expression; names go through ``resolve``.

    Raises :class:`ExpressionError` naming the problem and the formula."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ExpressionError(f"formula {text!r} is not a finite number")
        return sp.Float(value)
    if not isinstance(text, str):
        raise ExpressionError(f"expected a formula, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"formula longer than {MAX_LENGTH} characters")
    parser = _Parser(text, resolve)
    result = parser.parse()
    result = _num(result)
    if result.has(sp.zoo, sp.oo, -sp.oo, sp.nan, sp.I):
        raise parser.fail("non-finite or complex constant")
    return result


class _Parser:
    def __init__(self, text: str, resolve: Callable[[str], sp.Expr]) -> None:
        self.text = text
        self.resolve = resolve
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.depth = 0

    def fail(self, msg: str) -> ExpressionError:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return ExpressionError(f"{msg} in formula {shown!r}")

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if not m or m.end() == pos:
                raise self.fail(f"unexpected character {stripped[pos:].lstrip()[:1]!r}")
            kind = m.lastgroup
            assert kind is not None
            out.append((kind, m.group(kind)))
            pos = m.end()
        if not out:
            raise ExpressionError("empty formula")
        return out

    # -- token helpers -----------------------------------------------------------------------------
    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def accept(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ops:
            self.pos += 1
            return tok[1]
        return None

    def expect(self, op: str) -> None:
        if not self.accept(op):
            tok = self.peek()
            raise self.fail(f"expected {op!r}, found {tok[1] if tok else 'the end'!r}")

    def parse(self) -> Any:
        result = self.or_()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return result

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("formula nested too deeply")

    # -- grammar, lowest precedence first -----------------------------------------------------------
    def or_(self) -> Any:
        left = self.and_()
        while self.accept("||"):
            left = sp.Or(_bool(left), _bool(self.and_()))
        return left

    def and_(self) -> Any:
        left = self.equality()
        while self.accept("&&"):
            left = sp.And(_bool(left), _bool(self.equality()))
        return left

    def equality(self) -> Any:
        left = self.comparison()
        op = self.accept("==", "!=")
        if op:
            right = self.comparison()
            left = (sp.Eq if op == "==" else sp.Ne)(_num(left), _num(right))
        return left

    def comparison(self) -> Any:
        left = self.additive()
        op = self.accept("<", "<=", ">", ">=")
        if op:
            right = self.additive()
            left = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}[op](_num(left), _num(right))
        return left

    def additive(self) -> Any:
        left = self.multiplicative()
        while True:
            op = self.accept("+", "-")
            if not op:
                return left
            right = _num(self.multiplicative())
            left = _num(left) + right if op == "+" else _num(left) - right

    def multiplicative(self) -> Any:
        left = self.unary()
        while True:
            op = self.accept("*", "/")
            if not op:
                return left
            right = _num(self.unary())
            if op == "/" and right.is_zero:
                raise self.fail("division by zero")
            left = _num(left) * right if op == "*" else _num(left) / right

    def unary(self) -> Any:
        self._enter()
        try:
            op = self.accept("-", "+", "!")
            if op == "-":
                return -_num(self.unary())
            if op == "+":
                return _num(self.unary())
            if op == "!":
                return sp.Not(_bool(self.unary()))
            return self.power()
        finally:
            self.depth -= 1

    def power(self) -> Any:
        base = self.atom()
        if self.accept("^", "**"):
            exponent = _num(self.unary())  # right-associative; 2^-1 allowed
            return sp.Pow(_num(base), exponent)
        return base

    def atom(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end")
        kind, value = tok
        self.pos += 1
        if kind == "number":
            return sp.Integer(int(value)) if value.isdigit() and len(value) < 16 else sp.Float(float(value))
        if kind == "op" and value == "(":
            self._enter()
            inner = self.or_()
            self.depth -= 1
            self.expect(")")
            return inner
        if kind == "name":
            if self.accept("("):
                return self.call(value)
            low = value.lower()
            if low == "true":
                return sp.true
            if low == "false":
                return sp.false
            if low in ("inf", "nan") or value in RESERVED:
                raise self.fail(f"{value!r} cannot be used as a name")
            return self.resolve(value)
        raise self.fail(f"unexpected {value!r}")

    def call(self, name: str) -> Any:
        self._enter()
        args = []
        if not self.accept(")"):
            args.append(self.or_())
            while self.accept(","):
                args.append(self.or_())
            self.expect(")")
        self.depth -= 1
        if name == "piecewise":
            if len(args) < 3 or len(args) % 2 == 0:
                raise self.fail("piecewise() takes value, condition pairs and an otherwise value")
            pieces = [(_num(args[i]), _bool(args[i + 1])) for i in range(0, len(args) - 1, 2)]
            return sp.Piecewise(*pieces, (_num(args[-1]), sp.true))
        nums = [_num(a) for a in args]
        if name == "log":
            if len(nums) == 1:
                return sp.log(nums[0])
            if len(nums) == 2:
                return sp.log(nums[0]) / sp.log(nums[1])
        elif name in FUNCTIONS:
            if len(nums) == 1:
                return FUNCTIONS[name](nums[0])
        elif name in BINARY:
            if len(nums) == 2:
                return BINARY[name](*nums)
        else:
            raise self.fail(f"unknown function {name!r}")
        raise self.fail(f"wrong number of arguments ({len(nums)}) to {name}()")


def _num(x: Any) -> Any:
    """A boolean as a number (1/0)."""
    if x is sp.true:
        return sp.Integer(1)
    if x is sp.false:
        return sp.Integer(0)
    if isinstance(x, sp.logic.boolalg.Boolean) and not isinstance(x, sp.Expr):
        return sp.Piecewise((1, x), (0, True))
    return x


def _bool(x: Any) -> Any:
    """A number as a condition (x != 0)."""
    if isinstance(x, sp.logic.boolalg.Boolean) and not isinstance(x, sp.Expr):
        return x
    return sp.Ne(x, 0)
