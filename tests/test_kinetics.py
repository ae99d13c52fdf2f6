"""Properties of the kinetic-law library and of the assembled right-hand side f."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from symode.spec import load_spec, loads_spec
from symode.symbolic import kinetics
from symode.symbolic.rhs import SymbolicModel, build_symbolic

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=150, deadline=None)

# Exact rational arithmetic: strict inequalities hold exactly (no float rounding to the limit).
positive = st.fractions(min_value=Fraction(1, 10**6), max_value=10**6, max_denominator=10**6).map(
    lambda f: sp.Rational(f.numerator, f.denominator))
nonneg = st.fractions(min_value=0, max_value=10**6, max_denominator=10**6).map(
    lambda f: sp.Rational(f.numerator, f.denominator))


@SETTINGS
@given(nonneg, positive, positive)
def test_monod_in_zero_mu(M, mu, K) -> None:
    r = kinetics.monod(M, mu, K=K)
    assert 0 <= r < mu
    if M > 0:
        assert r > 0


@SETTINGS
@given(nonneg, nonneg, positive, positive)
def test_monod_increasing_in_M(M1, M2, mu, K) -> None:
    assume(M1 != M2)
    lo, hi = sorted((M1, M2))
    assert kinetics.monod(lo, mu, K=K) < kinetics.monod(hi, mu, K=K)
    assert kinetics.monod(lo, mu, a=1 / K) < kinetics.monod(hi, mu, a=1 / K)


@SETTINGS
@given(nonneg, positive, positive)
def test_monod_K_and_a_forms_agree(M, mu, K) -> None:
    assert kinetics.monod(M, mu, K=K) == kinetics.monod(M, mu, a=1 / K)


def test_monod_forms_agree_symbolically() -> None:
    M, mu, K = sp.symbols("M mu K", positive=True)
    assert sp.simplify(kinetics.monod(M, mu, K=K) - kinetics.monod(M, mu, a=1 / K)) == 0
    assert sp.simplify(kinetics.monod(M, mu, K=K) - mu * M / (K + M)) == 0
    assert sp.limit(kinetics.monod(M, mu, K=K), M, sp.oo) == mu


@SETTINGS
@given(nonneg, positive)
def test_noncompetitive_I_and_kappa_forms_agree(M, I) -> None:  # noqa: E741
    f_i = kinetics.noncompetitive(M, I=I)
    assert f_i == kinetics.noncompetitive(M, kappa=1 / I)
    assert 0 < f_i <= 1
    if M > 0:
        assert f_i < 1


@SETTINGS
@given(nonneg, positive, positive, positive)
def test_haldane_below_monod(M, mu, K, Ki) -> None:
    h = kinetics.haldane(M, mu, K, Ki)
    m = kinetics.monod(M, mu, K=K)
    assert 0 <= h <= m
    if M > 0:
        assert h < m


@SETTINGS
@given(positive, positive)
def test_competitive_factor(M, Ki) -> None:
    assert kinetics.competitive_factor(M, Ki) > 1
    assert kinetics.competitive_factor(0, Ki) == 1


def test_competitive_inhibition_vanishes_as_Ki_grows() -> None:
    M, mu, K, Ki = sp.symbols("M mu K Ki", positive=True)
    assert sp.limit(kinetics.competitive_factor(M, Ki), Ki, sp.oo) == 1
    inhibited = kinetics.monod(M, mu, K=K * kinetics.competitive_factor(sp.Symbol("I", positive=True), Ki))
    assert sp.simplify(sp.limit(inhibited, Ki, sp.oo) - kinetics.monod(M, mu, K=K)) == 0


# -- assembled models ---------------------------------------------------------------------------------
def _f(text: str) -> dict[str, sp.Expr]:
    return build_symbolic(loads_spec(text)).equations()


def _same(f1: dict[str, sp.Expr], f2: dict[str, sp.Expr]) -> None:
    assert f1.keys() == f2.keys()
    for n in f1:
        assert sp.simplify(f1[n] - f2[n]) == 0, (n, f1[n], f2[n])


ONE_SPECIES = """
states: {{M: {{role: substrate, x0: 1}}, X: {{role: main, x0: 1}}, P: {{role: metabolite}}}}
parameters: {{mu: 0.5, K: 2.0, a: 0.5, g: 1.2, Ki: 3.0, I: 4.0, kap: 0.25}}
interactions:
  - {{type: uptake, law: {law}, from: M, to: X, mu: mu, {sat}, yield: g}}
{extra}
"""


@pytest.mark.parametrize("sat", ["K: K", "a: a"])
def test_shared_monod_with_single_substrate_equals_monod(sat: str) -> None:
    _same(_f(ONE_SPECIES.format(law="shared_monod", sat=sat, extra="")),
          _f(ONE_SPECIES.format(law="monod", sat=sat, extra="")))


def test_K_and_a_forms_agree_in_model_when_a_is_1_over_K() -> None:
    f_k = _f(ONE_SPECIES.format(law="shared_monod", sat="K: K", extra=""))
    f_a = _f(ONE_SPECIES.format(law="shared_monod", sat="a: a", extra=""))
    a, K = sp.symbols("a K", real=True)
    _same(f_k, {n: e.subs(a, 1 / K) for n, e in f_a.items()})


def test_noncompetitive_I_and_kappa_forms_agree_in_model() -> None:
    f_i = _f(ONE_SPECIES.format(law="monod", sat="K: K", extra="  - {type: inhibition, from: P, to: X, I: I}"))
    f_k = _f(ONE_SPECIES.format(law="monod", sat="K: K", extra="  - {type: inhibition, from: P, to: X, kappa: kap}"))
    I_, kap = sp.symbols("I kap", real=True)
    _same(f_i, {n: e.subs(kap, 1 / I_) for n, e in f_k.items()})


def test_competitive_inhibition_with_infinite_Ki_is_no_inhibition() -> None:
    for law, sat in (("monod", "K: K"), ("monod", "a: a"), ("shared_monod", "K: K"), ("shared_monod", "a: a")):
        extra = "  - {type: inhibition, law: competitive, from: P, to: X, Ki: Ki}"
        f_c = _f(ONE_SPECIES.format(law=law, sat=sat, extra=extra))
        f_0 = _f(ONE_SPECIES.format(law=law, sat=sat, extra=""))
        Ki, eps = sp.Symbol("Ki", real=True), sp.Symbol("eps", positive=True)
        limit = {n: sp.simplify(e.subs(Ki, 1 / eps)).subs(eps, 0) for n, e in f_c.items()}
        _same(limit, f_0)
        assert f_c != f_0


def test_haldane_in_model() -> None:
    f = _f(ONE_SPECIES.format(law="haldane", sat="K: K, Ki: Ki", extra=""))
    M, X, mu, K, Ki, g = sp.symbols("M X mu K Ki g", real=True)
    r = mu * M / (K + M + M**2 / Ki)
    _same(f, {"M": -g * r * X, "X": r * X, "P": sp.Integer(0)})


def test_inhibition_applies_to_growth_vs_growth_and_uptake() -> None:
    M, X, P, mu, K, g, I_ = sp.symbols("M X P mu K g I", real=True)
    r = mu * M / (K + M)
    F = I_ / (I_ + P)
    both = _f(ONE_SPECIES.format(law="monod", sat="K: K", extra="  - {type: inhibition, from: P, to: X, I: I}"))
    _same(both, {"M": -g * r * F * X, "X": r * F * X, "P": sp.Integer(0)})
    growth = _f(ONE_SPECIES.format(law="monod", sat="K: K",
                                   extra="  - {type: inhibition, from: P, to: X, I: I, applies_to: growth}"))
    _same(growth, {"M": -g * r * X, "X": r * F * X, "P": sp.Integer(0)})


@pytest.mark.parametrize("law, term", [("non_growth", "v: 0.1"), ("growth_associated", "alpha: 0.1"),
                                       ("luedeking_piret", "alpha: 0.1, v: 0.2")])
def test_production_laws(law: str, term: str) -> None:
    f = _f(ONE_SPECIES.format(law="monod", sat="K: K",
                              extra=f"  - {{type: production, law: {law}, from: X, to: P, {term}}}"))
    M, X, mu, K = sp.symbols("M X mu K", real=True)
    mu_x = mu * M / (K + M)
    want = {"non_growth": sp.Float(0.1) * X, "growth_associated": sp.Float(0.1) * mu_x * X,
            "luedeking_piret": (sp.Float(0.1) * mu_x + sp.Float(0.2)) * X}[law]
    assert sp.simplify(f["P"] - want) == 0


def test_glv_mass_action_custom_and_batch() -> None:
    text = """
states: {X: 1, Y: 1, A: 1, B: 1, C: 0}
parameters: {c: 0.1, k: 0.2, r: 0.3}
interactions:
  - {type: glv, from: Y, to: X, a: c}
  - {type: mass_action, reactants: {A: 1, B: 2}, products: {C: 1}, k: k}
  - {id: flux, type: custom, rate: "r * X * t", stoichiometry: {Y: 2, X: -1}}
"""
    f = _f(text)
    X, Y, A, B, c, k, r, t = sp.symbols("X Y A B c k r t", real=True)
    rate = k * A * B**2
    _same(f, {"X": c * X * Y - r * X * t, "Y": 2 * r * X * t, "A": -rate, "B": -2 * rate, "C": rate})


# -- model (1) (docs/model.md, section 2) ----------------------------------------------------------------
def test_chemostat_f_equals_model_1() -> None:
    model = build_symbolic(load_spec(ROOT / "specs" / "chemostat.yaml"))
    names = "S X Y A B D S0 gamma mu0 KS gA gB vA vB muA muB KA IA KB IB"
    S, X, Y, A, B, D, S0, gamma, mu0, KS, gA, gB, vA, vB, muA, muB, KA, IA, KB, IB = sp.symbols(names, real=True)
    den = 1 + A / KA + B / KB
    qA = gA * muA * (A / KA) / den
    qB = gB * muB * (B / KB) / den
    muY = (muA * A / KA + muB * B / KB) / den
    muX = mu0 * IA / (IA + A) * IB / (IB + B) * S / (KS + S)
    want = {
        "S": (S0 - S) * D - gamma * muX * X,
        "X": (muX - D) * X,
        "Y": (muY - D) * Y,
        "A": vA * X - D * A - qA * Y,
        "B": vB * X - D * B - qB * Y,
    }
    _same(model.equations(), want)
    assert model.state_names == ["S", "X", "Y", "A", "B"]
    assert model.input_names == ["D"]
    assert model.parameter_names == ["S0", "gamma", "mu0", "KS", "gA", "gB", "vA", "vB", "muA", "muB", "KA",
                                     "IA", "KB", "IB"]
    assert sp.simplify(model.growth["X"] - muX) == 0
    assert sp.simplify(model.growth["Y"] - muY) == 0
    assert list(model.h) == [X, S]
    assert model.jac_x.shape == (5, 5) and model.jac_p.shape == (5, 14)


@functools.cache
def _chemostat_model() -> SymbolicModel:
    return build_symbolic(load_spec(ROOT / "specs" / "chemostat.yaml"))


@SETTINGS
@given(st.fixed_dictionaries({n: st.floats(0.01, 100) for n in ("S", "X", "Y", "A", "B")}),
       st.floats(0.01, 1.0))
def test_chemostat_f_numerically(state, D) -> None:
    """Numerical spot check of the same equations at random states (truth-like parameter values)."""
    model = _chemostat_model()
    spec = model.spec
    pv = {n: p.value for n, p in spec.parameters.items()}
    subs = {s: state[s.name] for s in model.x} | {s: pv[s.name] for s in model.p} | {model.u[0]: D}
    S, X, Y, A, B = (state[n] for n in ("S", "X", "Y", "A", "B"))
    den = 1 + A / pv["KA"] + B / pv["KB"]
    muX = pv["mu0"] * pv["IA"] / (pv["IA"] + A) * pv["IB"] / (pv["IB"] + B) * S / (pv["KS"] + S)
    muY = (pv["muA"] * A / pv["KA"] + pv["muB"] * B / pv["KB"]) / den
    want = [(pv["S0"] - S) * D - pv["gamma"] * muX * X, (muX - D) * X, (muY - D) * Y,
            pv["vA"] * X - D * A - pv["gA"] * pv["muA"] * (A / pv["KA"]) / den * Y,
            pv["vB"] * X - D * B - pv["gB"] * pv["muB"] * (B / pv["KB"]) / den * Y]
    got = [float(e.xreplace(subs)) for e in model.f]
    for g, w in zip(got, want, strict=True):
        assert abs(g - w) <= 1e-9 * (1 + abs(w))
