"""Property and security tests of the safe expression parser (symode.expr.parse_expression)."""

from __future__ import annotations

import math
import time

import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from symode.errors import ExpressionError, SpecError
from symode.spec.expr import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_EXPONENT,
    MAX_LENGTH,
    format_expression,
    free_names,
    parse_expression,
)

NAMES = ["x", "y", "S", "mu_1", "KA"]
SETTINGS = settings(max_examples=150, deadline=None)


# -- random well-formed expressions with an independent reference evaluation -------------------------
# A node is (text, fn) where fn(env) -> (value, magnitude); magnitude bounds every intermediate value and
# sets the tolerance of the comparison (cancellation in x - x loses relative, not absolute, accuracy).

def _leaf_name(name: str):
    return (name, lambda env: (env[name], abs(env[name])))


def _leaf_number(value: float | int, text: str):
    return (text, lambda env: (float(value), abs(float(value))))


numbers = st.one_of(
    st.integers(0, 1000).map(lambda n: _leaf_number(n, str(n))),
    st.floats(0, 100, allow_nan=False, allow_infinity=False).map(lambda v: _leaf_number(v, repr(v))),
    st.sampled_from([("1e-3", 1e-3), ("2.5E2", 250.0), ("1_000", 1000), ("0x10", 16), (".5", 0.5)]).map(
        lambda p: _leaf_number(p[1], p[0])),
)
leaves = st.one_of(st.sampled_from(NAMES).map(_leaf_name), numbers)


def _combine(children: st.SearchStrategy) -> st.SearchStrategy:
    def binary(op: str):
        def build(a, b):
            (ta, fa), (tb, fb) = a, b

            def fn(env):
                va, ma = fa(env)
                vb, mb = fb(env)
                if op == "+":
                    v = va + vb
                elif op == "-":
                    v = va - vb
                elif op == "*":
                    v = va * vb
                else:  # a / (|b| + 0.5): the denominator stays away from zero
                    v = va / (abs(vb) + 0.5)
                return v, max(ma, mb, abs(v))

            text = f"({ta}) / (abs({tb}) + 0.5)" if op == "/" else f"({ta}) {op} ({tb})"
            return (text, fn)

        return st.tuples(children, children).map(lambda ab: build(*ab))

    def unary(name: str):
        def build(a):
            ta, fa = a
            ref = {"exp": lambda v: math.exp(math.tanh(v)), "log": lambda v: math.log(abs(v) + 0.5),
                   "sqrt": lambda v: math.sqrt(abs(v)), "abs": abs, "tanh": math.tanh, "sin": math.sin,
                   "cos": math.cos, "neg": lambda v: -v, "pos": lambda v: v}[name]
            text = {"exp": f"exp(tanh({ta}))", "log": f"log(abs({ta}) + 0.5)", "sqrt": f"sqrt(abs({ta}))",
                    "neg": f"-({ta})", "pos": f"+({ta})"}.get(name, f"{name}({ta})")

            def fn(env):
                v, m = fa(env)
                r = ref(v)
                return r, max(m, abs(r))

            return (text, fn)

        return children.map(build)

    def minmax(name: str):
        def build(args):
            texts = ", ".join(a[0] for a in args)

            def fn(env):
                vals = [a[1](env) for a in args]
                r = (min if name == "min" else max)(v for v, _ in vals)
                return r, max(max(m for _, m in vals), abs(r))

            return (f"{name}({texts})", fn)

        return st.lists(children, min_size=2, max_size=4).map(build)

    def power(a, k: int, style: str):
        ta, fa = a
        text = f"({ta}) ** {k}" if style == "op" else f"pow({ta}, {k})"

        def fn(env):
            v, m = fa(env)
            r = v**k
            return r, max(m, abs(r), 1.0)

        return (text, fn)

    return st.one_of(
        *[binary(op) for op in "+-*/"],
        *[unary(n) for n in ("exp", "log", "sqrt", "abs", "tanh", "sin", "cos", "neg", "pos")],
        minmax("min"), minmax("max"),
        st.builds(power, children, st.integers(0, 3), st.sampled_from(["op", "pow"])),
    )


expressions = st.recursive(leaves, _combine, max_leaves=12)
envs = st.fixed_dictionaries({n: st.floats(-3, 3, allow_nan=False, allow_infinity=False) for n in NAMES})


def _sympy_value(expr: sp.Expr, env: dict[str, float]) -> float:
    subs = {sp.Symbol(n, real=True): sp.Float(v, 30) for n, v in env.items()}
    return float(expr.xreplace(subs).evalf(30))


@SETTINGS
@given(expressions, envs)
def test_random_expressions_agree_with_reference(node, env) -> None:
    text, fn = node
    try:
        want, mag = fn(env)
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    assume(math.isfinite(want) and mag < 1e12)
    expr = parse_expression(text, NAMES)
    assert isinstance(expr, sp.Expr)
    assert free_names(expr) <= set(NAMES)
    got = _sympy_value(expr, env)
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9 * (1 + mag)), (text, got, want)


@SETTINGS
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=300), envs)
def test_long_flat_sums_are_accepted(names, env) -> None:
    """A left-associated chain of + counts as one level of nesting, so long sums parse."""
    expr = parse_expression(" + ".join(names), NAMES)
    assert math.isclose(_sympy_value(expr, env), sum(env[n] for n in names), rel_tol=1e-9, abs_tol=1e-9)


def test_whitelisted_functions_map_to_sympy() -> None:
    x = sp.Symbol("x", real=True)
    syms = {"x": x}
    assert parse_expression("exp(x)", syms) == sp.exp(x)
    assert parse_expression("log(x)", syms) == sp.log(x)
    assert parse_expression("sqrt(x)", syms) == sp.sqrt(x)
    assert parse_expression("abs(x)", syms) == sp.Abs(x)
    assert parse_expression("tanh(x)", syms) == sp.tanh(x)
    assert parse_expression("min(x, 1, 2)", syms) == sp.Min(x, 1)
    assert parse_expression("max(x, 1)", syms) == sp.Max(x, 1)
    assert parse_expression("pow(x, 2)", syms) == x**2
    assert parse_expression(3.5, syms) == sp.Float(3.5)
    assert set(FUNCTIONS) == {"exp", "log", "sqrt", "abs", "tanh", "sin", "cos", "min", "max", "pow", "tan", "asin",
                              "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "sign"}
    assert parse_expression("floor(x) + ceil(x) + sign(x)", syms) == sp.floor(x) + sp.ceiling(x) + sp.sign(x)
    assert parse_expression("asinh(tan(x))", syms) == sp.asinh(sp.tan(x))


def test_symbol_mapping_is_used() -> None:
    k = sp.Symbol("k_internal", positive=True)
    assert parse_expression("2*k", {"k": k}) == 2 * k


# -- garbage never raises anything but ExpressionError -------------------------------------------------
PY_ALPHABET = "()[]{}.,:;'\"+-*/%@!~^&|<>=_ \n\t#\\abcxyzSKe0123456789λé∑ｘ\x00"


def _parse_or_error(text: str) -> None:
    try:
        expr = parse_expression(text, NAMES)
    except ExpressionError as exc:
        assert isinstance(exc, SpecError)
        assert str(exc)
        return
    assert isinstance(expr, sp.Expr)
    assert free_names(expr) <= set(NAMES)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_random_unicode_only_expression_errors(text: str) -> None:
    _parse_or_error(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=PY_ALPHABET, max_size=60))
def test_random_python_like_text_only_expression_errors(text: str) -> None:
    _parse_or_error(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["x", "y", "1", "2.5", "+", "-", "*", "/", "**", "(", ")", "exp(", "min(",
                                 ",", "sqrt(", "log(", "0", "9", "1e308", "abs(", "pow("]), max_size=30))
def test_random_token_soup_only_expression_errors(tokens: list[str]) -> None:
    _parse_or_error(" ".join(tokens))
    _parse_or_error("".join(tokens))


def test_non_string_input() -> None:
    for bad in (None, True, [1], {"a": 1}, b"x"):
        with pytest.raises(ExpressionError):
            parse_expression(bad, NAMES)  # type: ignore[arg-type]


# -- security ----------------------------------------------------------------------------------------
ATTACKS = [
    "__import__('os').system('touch {marker}')",
    "__import__(\"os\").system(\"touch {marker}\")",
    "exec(\"open('{marker}', 'w')\")",
    "eval(\"open('{marker}', 'w')\")",
    "open('{marker}', 'w')",
    "().__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "x.__class__",
    "x.real",
    "getattr(x, 'real')",
    "exp.__globals__",
    "x[0]",
    "exp(x)[0]",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "lambda x: x",
    "[__import__('os').system('touch {marker}') for _ in 'a']",
    "{{i: i for i in range(3)}}",
    "sum(i for i in range(10))",
    "f'{{x}}'",
    "f\"{{__import__('os').system('touch {marker}')}}\"",
    "exp(x=1)",
    "max(x, y, key=abs)",
    "max(*[x, y])",
    "(y := 1)",
    "9**9**9",
    "10**10**10",
    "pow(9, pow(9, 9))",
    "2**(2**(2**(2**2)))",
    "x**1000000",
    "99999999999999999999999999999",
    "'a' * 10**9",
    "x if x else y",
    "x < y",
    "not x",
    "x and y",
    "x % 2",
    "x // 2",
    "~x",
    "x @ y",
    "[x]",
    "(x, y)",
    "{{x}}",
    "b'x'",
    "...",
    "None",
    "True",
    "import os",
    "x; __import__('os')",
    "x\n__import__('os')",
    "yield x",
    "await x",
]


@pytest.mark.parametrize("template", ATTACKS)
def test_attacks_are_rejected_quickly_and_run_nothing(template: str, tmp_path) -> None:
    marker = tmp_path / "pwned"
    text = template.format(marker=marker)
    t0 = time.perf_counter()
    with pytest.raises(ExpressionError):
        parse_expression(text, ["x", "y"])
    assert time.perf_counter() - t0 < 1.0
    assert not marker.exists()


def test_pwned_file_in_tmp_not_created() -> None:
    target = "/tmp/pwned"
    existed = __import__("os").path.exists(target)
    with pytest.raises(ExpressionError):
        parse_expression("__import__('os').system('touch /tmp/pwned')", ["x"])
    if not existed:
        assert not __import__("os").path.exists(target)


@pytest.mark.parametrize("text", [
    "x+" * (MAX_LENGTH // 2 + 10) + "x",                     # too long
    "x" * (MAX_LENGTH + 1),
    "-" * 3000 + "x",                                         # deep unary chain (parser recursion)
    "(" * 1000 + "x" + ")" * 1000,                            # too many parentheses
    "exp(" * (MAX_DEPTH + 5) + "x" + ")" * (MAX_DEPTH + 5),   # deep calls
    "x*(" * (MAX_DEPTH + 5) + "x" + ")" * (MAX_DEPTH + 5),    # deep nesting of products
    "x**" * 200 + "2",
    "[" * 500 + "]" * 500,
])
def test_long_or_deep_inputs_rejected_quickly(text: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, ["x"])
    assert time.perf_counter() - t0 < 2.0
    assert len(str(info.value)) < 300  # the message quotes a shortened expression


@pytest.mark.parametrize("text", [
    "x**sqrt(-1)", "sqrt(-1)**2", "x**log(0)", "sqrt(-1) * x", "log(0)", "1/0.0", "1/0", "x/(x-x)", "1e400",
    "(-8)**0.5", "0**-1", f"x**{MAX_EXPONENT + 1}", f"x**-{MAX_EXPONENT + 1}", "2**x**100",
])
def test_nonfinite_complex_and_huge_constants_rejected(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text, ["x"])


def test_allowed_constant_powers() -> None:
    x = sp.Symbol("x", real=True)
    assert parse_expression(f"x**{MAX_EXPONENT}", {"x": x}) == x**MAX_EXPONENT
    assert float(parse_expression("2**10", [])) == 1024.0
    assert parse_expression("x**0.5", {"x": x}) == x**sp.Float(0.5)


@pytest.mark.parametrize("text, unknown", [("x + foo", "foo"), ("exp(bar) * x", "bar"), ("mu1/K", "mu1"),
                                           ("os", "os"), ("t", "t")])
def test_unknown_symbols_are_named(text: str, unknown: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, ["x", "K"])
    assert f"'{unknown}'" in str(info.value)
    assert "unknown symbol" in str(info.value)


def test_unknown_function_is_named() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression("gamma(x)", ["x"])
    assert "'gamma'" in str(info.value)


def test_function_name_without_call_and_wrong_arity() -> None:
    for text in ("exp", "exp + x", "min(x)", "pow(x)", "pow(x, 2, 3)", "exp(x, x)", "sin()"):
        with pytest.raises(ExpressionError):
            parse_expression(text, ["x"])


def test_empty_expression() -> None:
    for text in ("", "   ", "\n"):
        with pytest.raises(ExpressionError):
            parse_expression(text, ["x"])


# -- piecewise and conditions --------------------------------------------------------------------------
def test_piecewise_with_conditions() -> None:
    x, y, t = (sp.Symbol(n, real=True) for n in "xyt")
    syms = {"x": x, "y": y, "t": t}
    assert parse_expression("piecewise(x, t < 5, y)", syms) == sp.Piecewise((x, t < 5), (y, True))
    got = parse_expression("piecewise(1, 0 < x <= 2 and not (y == 1), 2, x != y or False, 3)", syms)
    want = sp.Piecewise((1, sp.And(0 < x, x <= 2, sp.Not(sp.Eq(y, 1)))), (2, sp.Or(sp.Ne(x, y), sp.false)), (3, True))
    assert got == want
    assert parse_expression("2 * piecewise(x, True, 0)", syms) == 2 * x


@pytest.mark.parametrize("text", [
    "piecewise(x, x < 1)", "piecewise(x)", "piecewise(x, y, 0)", "piecewise(x, x < 1, 0, 1)", "x < 1",
    "(x < 1) + 1", "piecewise(x, x < 1, y < 2)", "piecewise(x, x @ 1, 0)", "piecewise(x, x in y, 0)",
    "piecewise(x, x is y, 0)", "piecewise(x=1)", "piecewise(*[x])", "not x", "True",
])
def test_malformed_conditions_are_rejected(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text, ["x", "y"])


# -- format_expression is the inverse of parse_expression ------------------------------------------------
def _conditional(children: st.SearchStrategy) -> st.SearchStrategy:
    ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])

    def build(a, b, c, op, neg):
        cond = f"({a[0]}) {op} ({b[0]})"
        cond = f"not ({cond})" if neg else cond
        return f"piecewise({a[0]}, {cond}, {c[0]})"

    return st.builds(build, children, children, children, ops, st.booleans())


@SETTINGS
@given(expressions, envs)
def test_format_round_trip(node, env) -> None:
    expr = parse_expression(node[0], NAMES)
    text = format_expression(expr)
    again = parse_expression(text, NAMES)
    assert again == expr, (node[0], text)
    assert format_expression(again) == text


@pytest.mark.slow
@SETTINGS
@given(_conditional(expressions), envs)
def test_format_round_trip_piecewise(text, env) -> None:
    expr = parse_expression(text, NAMES)
    again = parse_expression(format_expression(expr), NAMES)
    assert again == expr or math.isclose(_sympy_value(again, env), _sympy_value(expr, env), rel_tol=1e-9,
                                         abs_tol=1e-9)


def test_format_writes_exact_numbers() -> None:
    x = sp.Symbol("x", real=True)
    for e in (sp.Rational(1, 3) * x, sp.Float(0.1) * x - 7, x ** sp.Rational(-5, 2), sp.E * x, -x, x / (1 + x)):
        assert parse_expression(format_expression(e), {"x": x}) == e
    assert float(parse_expression(format_expression(sp.pi), [])) == math.pi
