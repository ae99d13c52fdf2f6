"""sympy -> CasADi SX: expressions translated node by node, identical subexpressions shared.

:func:`to_casadi_cse` first runs sympy's common-subexpression elimination over all expressions jointly
(f, its Jacobians and the observables of a model are translated in one pass), so each shared term is
computed once in the generated C.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from symode.errors import SymodeError


def to_casadi(exprs: list[sp.Expr], mapping: dict[sp.Symbol, Any]) -> list[Any]:
    """Translate sympy expressions to CasADi SX, sharing identical subexpressions (memoised)."""
    import casadi as ca

    memo: dict[sp.Expr, Any] = dict(mapping)
    funcs = {sp.exp: ca.exp, sp.log: ca.log, sp.tanh: ca.tanh, sp.sin: ca.sin, sp.cos: ca.cos,
             sp.Abs: ca.fabs, sp.tan: ca.tan, sp.asin: ca.asin, sp.acos: ca.acos, sp.atan: ca.atan,
             sp.sinh: ca.sinh, sp.cosh: ca.cosh, sp.asinh: ca.asinh, sp.acosh: ca.acosh, sp.atanh: ca.atanh,
             sp.floor: ca.floor, sp.ceiling: ca.ceil, sp.sign: ca.sign}
    relations = {sp.StrictLessThan: ca.lt, sp.LessThan: ca.le, sp.StrictGreaterThan: ca.gt,
                 sp.GreaterThan: ca.ge, sp.Equality: ca.eq, sp.Unequality: ca.ne}

    def tr(e: sp.Expr) -> Any:
        hit = memo.get(e)
        if hit is not None:
            return hit
        if e.is_Number:
            out = ca.SX(float(e))
        elif e.is_Add:
            args = [tr(a) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = out + a
        elif e.is_Mul:
            num = [a for a in e.args if not (a.is_Pow and a.exp.is_Number and a.exp < 0)]
            den = [1 / a for a in e.args if a.is_Pow and a.exp.is_Number and a.exp < 0]
            out = _product([tr(a) for a in num]) if num else ca.SX(1.0)
            if den:
                out = out / _product([tr(a) for a in den])
        elif e.is_Pow:
            base, ex = e.args
            if ex == -1:
                out = 1 / tr(base)
            elif ex == sp.Rational(1, 2):
                out = ca.sqrt(tr(base))
            elif ex.is_Integer and 0 < int(ex) <= 4:
                b = tr(base)
                out = b
                for _ in range(int(ex) - 1):
                    out = out * b
            elif ex.is_Integer and -4 <= int(ex) < 0:
                out = 1 / tr(base ** (-ex))
            else:
                out = tr(base) ** tr(ex) if not ex.is_Number else ca.power(tr(base), float(ex))
        elif isinstance(e, (sp.Min, sp.Max)):
            op = ca.fmin if isinstance(e, sp.Min) else ca.fmax
            args = [tr(a) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = op(out, a)
        elif e.func in funcs:
            out = funcs[e.func](tr(e.args[0]))
        elif isinstance(e, sp.Piecewise):  # the first true condition's value (else the last one's)
            out = tr(e.args[-1][0])
            for value, cond in reversed(e.args[:-1]):
                out = ca.if_else(tr(cond), tr(value), out)
        elif e is sp.true or e is sp.false:
            out = ca.SX(1.0 if e is sp.true else 0.0)
        elif type(e) in relations:
            out = relations[type(e)](tr(e.lhs), tr(e.rhs))
        elif isinstance(e, (sp.And, sp.Or)):
            op = ca.logic_and if isinstance(e, sp.And) else ca.logic_or
            args = [tr(a) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = op(out, a)
        elif isinstance(e, sp.Not):
            out = ca.logic_not(tr(e.args[0]))
        elif isinstance(e, sp.Heaviside):  # from derivatives of min/max; H(0) = 1/2 as sympy's default
            arg = tr(e.args[0])
            out = ca.if_else(arg > 0, 1.0, ca.if_else(arg < 0, 0.0, 0.5))
        else:
            raise SymodeError(f"cannot generate code for {e.func.__name__} in {e}")
        memo[e] = out
        return out

    return [tr(sp.sympify(e)) for e in exprs]


def to_casadi_cse(exprs: list[sp.Expr], mapping: dict[sp.Symbol, Any]) -> list[Any]:
    """:func:`to_casadi` after sympy's common-subexpression elimination over all ``exprs`` jointly."""
    replacements, reduced = sp.cse(exprs, order="none")
    memo = dict(mapping)
    for sym_, expr in replacements:
        memo[sym_] = to_casadi([expr], memo)[0]
    return to_casadi(reduced, memo)


def _product(items: list[Any]) -> Any:
    out = items[0]
    for a in items[1:]:
        out = out * a
    return out
