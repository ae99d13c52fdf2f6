"""sympy -> SBML MathML (libsbml ASTs built node by node) and sympy -> PEtab math text, by whitelist.

Only the node types that symode's symbolic model produces are translated: numbers, symbols, ``+ * ^``,
``exp log sqrt abs tanh sin cos min max``, piecewise functions with relations and ``and``. Anything
else raises :class:`~symode.errors.SpecError`; no text is ever parsed as a formula, so nothing from a
spec's free text can reach the output as math.

Numbers are exact: libsbml writes reals with 15 significant digits, so a double that 15 digits do not
reproduce is written as the exact sum hi + lo of two that do (``lo = x - hi`` is exact). SBML Level 3
Version 1 has no ``min``/``max``; they become piecewise functions (max(a, b) = a if a >= b else b).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import libsbml
import sympy as sp

from symode.errors import SpecError

#: SBML SIds (and PEtab ids): a letter or underscore, then letters, digits, underscores.
SID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_SBML_FUNCTIONS: dict[type, int] = {
    sp.exp: libsbml.AST_FUNCTION_EXP,
    sp.log: libsbml.AST_FUNCTION_LN,
    sp.Abs: libsbml.AST_FUNCTION_ABS,
    sp.tanh: libsbml.AST_FUNCTION_TANH,
    sp.sin: libsbml.AST_FUNCTION_SIN,
    sp.cos: libsbml.AST_FUNCTION_COS,
}
_PETAB_FUNCTIONS: dict[type, str] = {sp.exp: "exp", sp.log: "ln", sp.Abs: "abs", sp.tanh: "tanh",
                                     sp.sin: "sin", sp.cos: "cos"}
_RELATIONS: dict[type, tuple[int, str]] = {
    sp.StrictLessThan: (libsbml.AST_RELATIONAL_LT, "<"),
    sp.LessThan: (libsbml.AST_RELATIONAL_LEQ, "<="),
    sp.StrictGreaterThan: (libsbml.AST_RELATIONAL_GT, ">"),
    sp.GreaterThan: (libsbml.AST_RELATIONAL_GEQ, ">="),
}


def _unsupported(expr: sp.Basic) -> SpecError:
    return SpecError(f"cannot export the expression node {type(expr).__name__} ({str(expr)[:60]})")


def check_number(x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise SpecError(f"cannot export the non-finite number {x}")
    return x


# ----------------------------------------------------------------------------------------------------
# libsbml ASTs
# ----------------------------------------------------------------------------------------------------

def _node(kind: int, *children: libsbml.ASTNode) -> libsbml.ASTNode:
    node = libsbml.ASTNode(kind)
    for child in children:
        if node.addChild(child) != libsbml.LIBSBML_OPERATION_SUCCESS:
            raise RuntimeError("libsbml refused an AST child")
    return node


def real_node(x: float) -> libsbml.ASTNode:
    """A number, exact to the last bit (see the module docstring)."""
    x = check_number(x)
    if x == int(x) and abs(x) < 2**31:
        node = libsbml.ASTNode(libsbml.AST_INTEGER)
        node.setValue(int(x))
        return node
    hi = float(f"{x:.15g}")
    node = libsbml.ASTNode(libsbml.AST_REAL)
    node.setValue(hi)
    if hi == x:
        return node
    lo = libsbml.ASTNode(libsbml.AST_REAL)
    lo.setValue(x - hi)
    return _node(libsbml.AST_PLUS, node, lo)


def name_node(sid: str) -> libsbml.ASTNode:
    if not SID_RE.match(sid):
        raise SpecError(f"cannot export the name {sid!r} (not an SBML identifier)")
    node = libsbml.ASTNode(libsbml.AST_NAME)
    node.setName(sid)
    return node


def time_node() -> libsbml.ASTNode:
    node = libsbml.ASTNode(libsbml.AST_NAME_TIME)
    node.setName("time")
    return node


def piecewise_node(pieces: list[tuple[libsbml.ASTNode, libsbml.ASTNode]], otherwise: libsbml.ASTNode
                   ) -> libsbml.ASTNode:
    """piecewise(value_1, condition_1, ..., otherwise)."""
    node = libsbml.ASTNode(libsbml.AST_FUNCTION_PIECEWISE)
    for value, cond in pieces:
        node.addChild(value)
        node.addChild(cond)
    node.addChild(otherwise)
    return node


def relation_node(kind: int, a: libsbml.ASTNode, b: libsbml.ASTNode) -> libsbml.ASTNode:
    return _node(kind, a, b)


def and_node(*conditions: libsbml.ASTNode) -> libsbml.ASTNode:
    return _node(libsbml.AST_LOGICAL_AND, *conditions)


def sum_node(*terms: libsbml.ASTNode) -> libsbml.ASTNode:
    return terms[0] if len(terms) == 1 else _node(libsbml.AST_PLUS, *terms)


def difference_node(a: libsbml.ASTNode, b: libsbml.ASTNode) -> libsbml.ASTNode:
    return _node(libsbml.AST_MINUS, a, b)


def product_node(*factors: libsbml.ASTNode) -> libsbml.ASTNode:
    return factors[0] if len(factors) == 1 else _node(libsbml.AST_TIMES, *factors)


class SbmlMath:
    """Translate sympy expressions to libsbml ASTs. ``names`` maps symbols to SBML ids; ``time`` is the
    symbol of time (-> the csymbol time, optionally shifted by ``time_offset``)."""

    def __init__(self, names: Mapping[sp.Symbol, str], time: sp.Symbol | None = None,
                 time_offset: str | None = None) -> None:
        self.names = dict(names)
        self.time = time
        self.time_offset = time_offset

    def __call__(self, expr: sp.Basic) -> libsbml.ASTNode:
        return self.visit(sp.sympify(expr) if isinstance(expr, (int, float)) else expr)

    def visit(self, e: sp.Basic) -> libsbml.ASTNode:
        handler: Callable[[sp.Basic], libsbml.ASTNode] | None = None
        if isinstance(e, sp.Symbol):
            handler = self._symbol
        elif isinstance(e, sp.Rational) and not isinstance(e, sp.Integer):
            return _node(libsbml.AST_DIVIDE, real_node(float(e.p)), real_node(float(e.q)))
        elif isinstance(e, sp.Number):
            return real_node(float(e))
        elif e is sp.E:
            return libsbml.ASTNode(libsbml.AST_CONSTANT_E)
        elif e is sp.pi:
            return libsbml.ASTNode(libsbml.AST_CONSTANT_PI)
        elif isinstance(e, sp.Add):
            return _node(libsbml.AST_PLUS, *(self.visit(a) for a in e.args))
        elif isinstance(e, sp.Mul):
            handler = self._mul
        elif isinstance(e, sp.Pow):
            handler = self._pow
        elif isinstance(e, (sp.Min, sp.Max)):
            handler = self._minmax
        elif isinstance(e, sp.Piecewise):
            handler = self._piecewise
        elif type(e) in _RELATIONS:
            return _node(_RELATIONS[type(e)][0], self.visit(e.args[0]), self.visit(e.args[1]))
        elif isinstance(e, sp.And):
            return _node(libsbml.AST_LOGICAL_AND, *(self.visit(a) for a in e.args))
        elif e.func in _SBML_FUNCTIONS and len(e.args) == 1:
            return _node(_SBML_FUNCTIONS[e.func], self.visit(e.args[0]))
        if handler is None:
            raise _unsupported(e)
        return handler(e)

    def _symbol(self, e: sp.Symbol) -> libsbml.ASTNode:
        if self.time is not None and e == self.time:
            if self.time_offset:
                return _node(libsbml.AST_PLUS, time_node(), name_node(self.time_offset))
            return time_node()
        if e not in self.names:
            raise SpecError(f"cannot export the symbol {e.name!r} (not a state, parameter or input)")
        return name_node(self.names[e])

    def _mul(self, e: sp.Mul) -> libsbml.ASTNode:
        num, den = [], []
        sign = 1
        for a in e.args:
            if isinstance(a, sp.Pow) and a.exp.is_Number and a.exp < 0:
                den.append(a.base if a.exp == -1 else sp.Pow(a.base, -a.exp, evaluate=False))
            elif a == -1:
                sign = -sign
            else:
                num.append(a)
        top = product_node(*(self.visit(a) for a in num)) if num else real_node(1.0)
        out = _node(libsbml.AST_DIVIDE, top, product_node(*(self.visit(a) for a in den))) if den else top
        return _node(libsbml.AST_MINUS, out) if sign < 0 else out

    def _pow(self, e: sp.Pow) -> libsbml.ASTNode:
        base, ex = e.args
        if ex == sp.Rational(1, 2):
            return _node(libsbml.AST_FUNCTION_ROOT, self.visit(base))
        if ex == -1:
            return _node(libsbml.AST_DIVIDE, real_node(1.0), self.visit(base))
        return _node(libsbml.AST_POWER, self.visit(base), self.visit(ex))

    def _minmax(self, e: sp.Basic) -> libsbml.ASTNode:
        rel = libsbml.AST_RELATIONAL_GEQ if isinstance(e, sp.Max) else libsbml.AST_RELATIONAL_LEQ
        args = list(e.args)
        out = self.visit(args[0])
        for a in args[1:]:
            # max(out, a) = out if out >= a else a (the same for min with <=); out is used twice, so copy it.
            cond = _node(rel, out.deepCopy(), self.visit(a))
            out = piecewise_node([(out, cond)], self.visit(a))
        return out

    def _piecewise(self, e: sp.Piecewise) -> libsbml.ASTNode:
        pieces = []
        otherwise = None
        for value, cond in e.args:
            if cond == sp.true:
                otherwise = self.visit(value)
                break
            pieces.append((self.visit(value), self.visit(cond)))
        if otherwise is None:
            raise SpecError("cannot export a piecewise expression without an 'otherwise' value")
        return piecewise_node(pieces, otherwise)


# ----------------------------------------------------------------------------------------------------
# PEtab math text
# ----------------------------------------------------------------------------------------------------

_PREC_ADD, _PREC_MUL, _PREC_UNARY, _PREC_POW, _PREC_ATOM = 1, 2, 3, 4, 5


def petab_number(x: float) -> str:
    """A float as PEtab math text, exact (Python's shortest round-trip repr)."""
    text = repr(check_number(x))
    return text


def petab_formula(expr: sp.Basic, names: Mapping[sp.Symbol, str]) -> str:
    """``expr`` as PEtab math text (infix, ``^`` for powers, ``ln`` for the natural logarithm)."""
    return _PetabPrinter(names).text(expr)[0]


class _PetabPrinter:
    def __init__(self, names: Mapping[sp.Symbol, str]) -> None:
        self.names = dict(names)

    def wrap(self, e: sp.Basic, prec: int) -> str:
        text, p = self.text(e)
        return f"({text})" if p < prec else text

    def text(self, e: sp.Basic) -> tuple[str, int]:
        if isinstance(e, sp.Symbol):
            if e not in self.names:
                raise SpecError(f"cannot export the symbol {e.name!r} (not a state, parameter or input)")
            return self.names[e], _PREC_ATOM
        if isinstance(e, sp.Rational) and not isinstance(e, sp.Integer):
            return f"{petab_number(float(e.p))} / {petab_number(float(e.q))}", _PREC_MUL
        if isinstance(e, sp.Number):
            x = float(e)
            return petab_number(x), (_PREC_UNARY if x < 0 else _PREC_ATOM)
        if isinstance(e, sp.Add):
            parts = [self.wrap(a, _PREC_ADD + 1) for a in e.args]
            return " + ".join(parts), _PREC_ADD
        if isinstance(e, sp.Mul):
            num, den = [], []
            sign = 1
            for a in e.args:
                if isinstance(a, sp.Pow) and a.exp.is_Number and a.exp < 0:
                    den.append(a.base if a.exp == -1 else sp.Pow(a.base, -a.exp, evaluate=False))
                elif a == -1:
                    sign = -sign
                else:
                    num.append(a)
            top = " * ".join(self.wrap(a, _PREC_MUL) for a in num) if num else "1"
            if den:
                top += " / " + " / ".join(self.wrap(a, _PREC_MUL + 1) for a in den)
            if sign < 0:
                return (f"-{top}" if len(num) == 1 and not den and self.text(num[0])[1] == _PREC_ATOM
                        else f"-({top})"), _PREC_UNARY
            return top, _PREC_MUL
        if isinstance(e, sp.Pow):
            base, ex = e.args
            if ex == sp.Rational(1, 2):
                return f"sqrt({self.text(base)[0]})", _PREC_ATOM
            return f"{self.wrap(base, _PREC_ATOM)} ^ {self.wrap(ex, _PREC_ATOM)}", _PREC_POW
        if isinstance(e, (sp.Min, sp.Max)):
            fn = "max" if isinstance(e, sp.Max) else "min"
            args = [self.text(a)[0] for a in e.args]
            out = args[0]
            for a in args[1:]:  # PEtab's min/max take two arguments
                out = f"{fn}({out}, {a})"
            return out, _PREC_ATOM
        if e.func in _PETAB_FUNCTIONS and len(e.args) == 1:
            return f"{_PETAB_FUNCTIONS[e.func]}({self.text(e.args[0])[0]})", _PREC_ATOM
        raise _unsupported(e)
