"""SBML math (libsbml abstract syntax trees) -> sympy, node type by node type.

Only the node types in the tables below are translated; any other node (delay, rateOf, factorial,
csymbol functions, MathML beyond SBML's subset, ...) raises :class:`UnsupportedSBML` naming it. No text is
ever parsed or evaluated: the tree comes from libsbml's MathML reader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import libsbml
import sympy as sp

from symode.errors import SpecError
from symode.petab.math import _bool, _num  # booleans as numbers and back, as in PEtab formulas

AVOGADRO = 6.02214179e23  # SBML Level 3 Version 1's value (libsbml uses the same)


class UnsupportedSBML(SpecError):
    """The SBML model uses a construct that symode does not import."""


def _recip(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: 1 / f(x)


def _of_recip(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: f(1 / x)


#: Functions of one argument.
UNARY: dict[int, Callable[[Any], Any]] = {
    libsbml.AST_FUNCTION_ABS: sp.Abs, libsbml.AST_FUNCTION_EXP: sp.exp, libsbml.AST_FUNCTION_LN: sp.log,
    libsbml.AST_FUNCTION_FLOOR: sp.floor, libsbml.AST_FUNCTION_CEILING: sp.ceiling,
    libsbml.AST_FUNCTION_SIN: sp.sin, libsbml.AST_FUNCTION_COS: sp.cos, libsbml.AST_FUNCTION_TAN: sp.tan,
    libsbml.AST_FUNCTION_SEC: _recip(sp.cos), libsbml.AST_FUNCTION_CSC: _recip(sp.sin),
    libsbml.AST_FUNCTION_COT: _recip(sp.tan), libsbml.AST_FUNCTION_SINH: sp.sinh, libsbml.AST_FUNCTION_COSH: sp.cosh,
    libsbml.AST_FUNCTION_TANH: sp.tanh, libsbml.AST_FUNCTION_SECH: _recip(sp.cosh),
    libsbml.AST_FUNCTION_CSCH: _recip(sp.sinh), libsbml.AST_FUNCTION_COTH: _recip(sp.tanh),
    libsbml.AST_FUNCTION_ARCSIN: sp.asin, libsbml.AST_FUNCTION_ARCCOS: sp.acos, libsbml.AST_FUNCTION_ARCTAN: sp.atan,
    libsbml.AST_FUNCTION_ARCSEC: _of_recip(sp.acos), libsbml.AST_FUNCTION_ARCCSC: _of_recip(sp.asin),
    libsbml.AST_FUNCTION_ARCCOT: _of_recip(sp.atan), libsbml.AST_FUNCTION_ARCSINH: sp.asinh,
    libsbml.AST_FUNCTION_ARCCOSH: sp.acosh, libsbml.AST_FUNCTION_ARCTANH: sp.atanh,
    libsbml.AST_FUNCTION_ARCSECH: _of_recip(sp.acosh), libsbml.AST_FUNCTION_ARCCSCH: _of_recip(sp.asinh),
    libsbml.AST_FUNCTION_ARCCOTH: _of_recip(sp.atanh),
}
RELATIONS: dict[int, Callable[[Any, Any], Any]] = {
    libsbml.AST_RELATIONAL_EQ: sp.Eq, libsbml.AST_RELATIONAL_NEQ: sp.Ne, libsbml.AST_RELATIONAL_LT: sp.Lt,
    libsbml.AST_RELATIONAL_LEQ: sp.Le, libsbml.AST_RELATIONAL_GT: sp.Gt, libsbml.AST_RELATIONAL_GEQ: sp.Ge,
}
MAX_DEPTH = 500


class MathConverter:
    """Translate libsbml ASTs with a name resolver and the model's function definitions.

    ``resolve(name)`` returns the symbol (or expression) of an SBML id; ``functions`` maps function
    definition ids to their lambda ASTs; ``t`` is the time symbol."""

    def __init__(self, resolve: Callable[[str], Any], functions: Mapping[str, Any], t: sp.Symbol) -> None:
        self.resolve = resolve
        self.functions = functions
        self.t = t

    def convert(self, node: Any, where: str, local: Mapping[str, Any] | None = None) -> Any:
        """The sympy value of ``node``; ``where`` names the SBML element in error messages."""
        if node is None:
            raise UnsupportedSBML(f"{where}: missing math")
        return self._node(node, where, dict(local or {}), 0)

    def _fail(self, node: Any, where: str, what: str | None = None) -> UnsupportedSBML:
        name = what or node.getName() or f"MathML node of type {node.getType()}"
        return UnsupportedSBML(f"{where}: math construct {name!r} is not supported")

    def _node(self, node: Any, where: str, local: dict[str, Any], depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise UnsupportedSBML(f"{where}: math nested too deeply")
        kind = node.getType()
        n = node.getNumChildren()

        def child(i: int) -> Any:
            return self._node(node.getChild(i), where, local, depth + 1)

        def num(i: int) -> Any:
            return _num(child(i))

        if kind == libsbml.AST_INTEGER:
            return sp.Integer(node.getInteger())
        if kind in (libsbml.AST_REAL, libsbml.AST_REAL_E):
            value = node.getReal()
            if value != value or abs(value) == float("inf"):
                raise UnsupportedSBML(f"{where}: non-finite number in math")
            return sp.Float(value)
        if kind == libsbml.AST_RATIONAL:
            return sp.Rational(node.getNumerator(), node.getDenominator())
        if kind == libsbml.AST_NAME:
            name = node.getName()
            if name in local:
                return local[name]
            return self.resolve(name)
        if kind == libsbml.AST_NAME_TIME:
            return self.t
        if kind == libsbml.AST_NAME_AVOGADRO:
            return sp.Float(AVOGADRO)
        if kind == libsbml.AST_CONSTANT_E:
            return sp.E
        if kind == libsbml.AST_CONSTANT_PI:
            return sp.pi
        if kind == libsbml.AST_CONSTANT_TRUE:
            return sp.true
        if kind == libsbml.AST_CONSTANT_FALSE:
            return sp.false
        if kind == libsbml.AST_PLUS:
            return sp.Add(*[num(i) for i in range(n)])
        if kind == libsbml.AST_MINUS:
            if n == 1:
                return -num(0)
            if n == 2:
                return num(0) - num(1)
        if kind == libsbml.AST_TIMES:
            return sp.Mul(*[num(i) for i in range(n)])
        if kind == libsbml.AST_DIVIDE and n == 2:
            return num(0) / num(1)
        if kind in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER) and n == 2:
            return sp.Pow(num(0), num(1))
        if kind == libsbml.AST_FUNCTION_ROOT:
            if n == 1:
                return sp.sqrt(num(0))
            if n == 2:
                return sp.Pow(num(1), 1 / num(0))
        if kind == libsbml.AST_FUNCTION_LOG:  # MathML log: base 10 unless a logbase is given
            if n == 1:
                return sp.log(num(0)) / sp.log(10)
            if n == 2:
                return sp.log(num(1)) / sp.log(num(0))
        if kind in UNARY and n == 1:
            return UNARY[kind](num(0))
        if kind in (libsbml.AST_FUNCTION_MAX, libsbml.AST_FUNCTION_MIN) and n >= 1:
            return (sp.Max if kind == libsbml.AST_FUNCTION_MAX else sp.Min)(*[num(i) for i in range(n)])
        if kind == libsbml.AST_FUNCTION_PIECEWISE:
            pieces = [(num(i), _bool(child(i + 1))) for i in range(0, n - 1, 2)]
            if n % 2 == 1:
                pieces.append((num(n - 1), sp.true))
            else:
                # no otherwise: SBML leaves the value undefined; symode takes 0 (documented)
                pieces.append((sp.Integer(0), sp.true))
            if len(pieces) == 2:
                minmax = _min_max(pieces[0][0], pieces[0][1], pieces[1][0])
                if minmax is not None:
                    return minmax
            return sp.Piecewise(*pieces)
        if kind in RELATIONS:
            args = [num(i) for i in range(n)]
            if n < 2:
                raise self._fail(node, where)
            if kind == libsbml.AST_RELATIONAL_NEQ and n != 2:
                raise self._fail(node, where)
            return sp.And(*[RELATIONS[kind](args[i], args[i + 1]) for i in range(n - 1)])
        if kind in (libsbml.AST_LOGICAL_AND, libsbml.AST_LOGICAL_OR, libsbml.AST_LOGICAL_XOR):
            args = [_bool(child(i)) for i in range(n)]
            if kind == libsbml.AST_LOGICAL_AND:
                return sp.And(*args)
            if kind == libsbml.AST_LOGICAL_OR:
                return sp.Or(*args)
            out = sp.false
            for a in args:  # xor written with and/or/not (odd number of true arguments)
                out = sp.Or(sp.And(out, sp.Not(a)), sp.And(sp.Not(out), a))
            return out
        if kind == libsbml.AST_LOGICAL_NOT and n == 1:
            return sp.Not(_bool(child(0)))
        if kind == libsbml.AST_LOGICAL_IMPLIES and n == 2:
            return sp.Or(sp.Not(_bool(child(0))), _bool(child(1)))
        if kind == libsbml.AST_FUNCTION:
            return self._call(node, where, local, depth)
        what = {libsbml.AST_FUNCTION_DELAY: "delay", libsbml.AST_FUNCTION_RATE_OF: "rateOf",
                libsbml.AST_FUNCTION_FACTORIAL: "factorial", libsbml.AST_FUNCTION_QUOTIENT: "quotient",
                libsbml.AST_FUNCTION_REM: "rem", libsbml.AST_CSYMBOL_FUNCTION: "csymbol function",
                libsbml.AST_LAMBDA: "lambda"}.get(kind)
        raise self._fail(node, where, what)

    def _call(self, node: Any, where: str, local: dict[str, Any], depth: int) -> Any:
        """A call of a function definition: its body with the arguments bound to the bound variables."""
        name = node.getName()
        lam = self.functions.get(name)
        if lam is None:
            raise UnsupportedSBML(f"{where}: call of unknown function {name!r}")
        n_bvar = lam.getNumBvars()
        if node.getNumChildren() != n_bvar:
            raise UnsupportedSBML(f"{where}: function {name!r} takes {n_bvar} argument(s), got "
                                  f"{node.getNumChildren()}")
        args = [self._node(node.getChild(i), where, local, depth + 1) for i in range(n_bvar)]
        bound = {lam.getChild(i).getName(): a for i, a in enumerate(args)}
        body = lam.getChild(lam.getNumChildren() - 1)
        # the body sees only its bound variables and the model's global ids (not the caller's locals)
        return self._node(body, f"{where} (function {name})", bound, depth + 1)


def _min_max(value: Any, cond: Any, other: Any) -> Any:
    """``piecewise(value, cond, other)`` as ``min``/``max`` when it is one, else None.

    ``piecewise(x, x <= y, y)`` (also with ``<``, or written ``y >= x``) is exactly min(x, y), and with the
    relation reversed max(x, y); SBML L3V1 has no min/max, so exporters (symode's too) write them this way.
    Keeping them as min/max matters beyond style: a Piecewise inside a condition is expanded by sympy into
    every combination of its pieces, so a min/max whose arguments are piecewise (inputs given as
    piecewise assignment rules) would grow combinatorially once the rules are substituted."""
    if not isinstance(cond, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan)):
        return None
    lhs, rhs = cond.args
    less = isinstance(cond, (sp.StrictLessThan, sp.LessThan))
    if (lhs, rhs) == (value, other):
        is_min = less
    elif (lhs, rhs) == (other, value):
        is_min = not less
    else:
        return None
    return sp.Min(value, other) if is_min else sp.Max(value, other)
