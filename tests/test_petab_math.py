"""The PEtab formula parser (symode.petab.math): PEtab's grammar and precedence, a whitelist, no eval."""

from __future__ import annotations

import math
import time

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symode.errors import ExpressionError
from symode.petab.math import parse_petab_math

x, y, t = sp.symbols("x y t", real=True)
NAMES = {"x": x, "y": y, "time": t}


def P(text):
    def resolve(name: str):
        if name in NAMES:
            return NAMES[name]
        raise ExpressionError(f"unknown symbol {name!r}")
    return parse_petab_math(text, resolve)


@pytest.mark.parametrize("text, value", [
    ("-2^2", -4.0), ("2^3^2", 512.0), ("2^-1", 0.5), ("2**3", 8.0), ("1 + 2 * 3", 7.0), ("(1 + 2) * 3", 9.0),
    ("8 / 4 / 2", 1.0), ("10 - 4 - 3", 3.0), ("log(100, 10)", 2.0), ("log10(1000)", 3.0), ("log2(8)", 3.0),
    ("ln(exp(2))", 2.0), ("sqrt(16)", 4.0), ("abs(-3)", 3.0), ("pow(2, 5)", 32.0), ("min(3, 1)", 1.0),
    ("max(3, 1)", 3.0), ("1e-3 * 1000", 1.0), (".5 + 1.", 1.5), ("true + true", 2.0),
    ("piecewise(1, 2 > 1, 0)", 1.0), ("piecewise(1, 2 < 1 || 3 < 2, 5)", 5.0),
    ("piecewise(1, !(2 < 1) && 3 >= 3, 5)", 1.0), ("piecewise(7, 1 == 1, 0) + piecewise(1, 2 != 2, 0)", 7.0),
    ("sec(0)", 1.0), ("arccos(1)", 0.0), ("cot(1)", 1 / math.tan(1)), ("arcsec(2)", math.acos(0.5)),
    ("sign(-2)", -1.0), ("floor(2.5) + ceil(2.5)", 5.0),
])
def test_values_and_precedence(text: str, value: float) -> None:
    assert math.isclose(float(P(text)), value, rel_tol=1e-12, abs_tol=1e-12)


def test_names_and_time() -> None:
    assert P("x * time + y") == x * t + y
    assert P("piecewise(x, time < 5, y)") == sp.Piecewise((x, t < 5), (y, True))


@pytest.mark.parametrize("text", [
    "foo + x", "gamma(x)", "x +", "(x", "x)", "x ** ", "__import__('os')", "x.real", "x[0]", "'a'", "x; y",
    "lambda: 1", "exp", "exp(1, 2)", "piecewise(1, x > 1)", "inf", "nan", "1/0", "log(0)", "x $ y", "",
])
def test_malformed_or_unknown_is_an_expression_error(text: str) -> None:
    with pytest.raises(ExpressionError):
        P(text)


def test_deep_or_long_input_is_rejected_quickly() -> None:
    for text in ["(" * 5000 + "x" + ")" * 5000, "-" * 5000 + "x", "x+" * 20000 + "x"]:
        t0 = time.perf_counter()
        with pytest.raises(ExpressionError):
            P(text)
        assert time.perf_counter() - t0 < 2.0


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="xy0123456789.+-*/^()<>=!&|, eE", max_size=40))
def test_random_text_parses_or_raises_expression_error(text: str) -> None:
    try:
        out = P(text)
    except ExpressionError:
        return
    assert isinstance(out, sp.Basic)
    assert {s.name for s in out.free_symbols} <= {"x", "y", "t"}
