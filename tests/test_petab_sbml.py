"""SBML import: every supported construct gives the right-hand side and initial values derived by hand,
and every unsupported one is refused with the construct and the SBML id in the message."""

from __future__ import annotations

import libsbml
import numpy as np
import pytest
import sympy as sp

from symode.petab.sbml import import_sbml
from symode.petab.sbml_math import UnsupportedSBML
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.spec import loads_spec
from symode.symbolic.rhs import build_symbolic


class Builder:
    """A small SBML Level 3 model written with libsbml."""

    def __init__(self, level: int = 3, version: int = 2) -> None:
        self.doc = libsbml.SBMLDocument(level, version)
        self.m = self.doc.createModel()
        self.m.setId("test_model")

    def compartment(self, cid: str, size: float, constant: bool = True):
        c = self.m.createCompartment()
        c.setId(cid)
        c.setSize(size)
        c.setConstant(constant)
        c.setSpatialDimensions(3)
        return c

    def species(self, sid: str, comp: str, *, conc: float | None = None, amount: float | None = None,
                hosu: bool = False, boundary: bool = False, constant: bool = False):
        s = self.m.createSpecies()
        s.setId(sid)
        s.setCompartment(comp)
        if conc is not None:
            s.setInitialConcentration(conc)
        if amount is not None:
            s.setInitialAmount(amount)
        s.setHasOnlySubstanceUnits(hosu)
        s.setBoundaryCondition(boundary)
        s.setConstant(constant)
        return s

    def parameter(self, pid: str, value: float | None, constant: bool = True):
        p = self.m.createParameter()
        p.setId(pid)
        if value is not None:
            p.setValue(value)
        p.setConstant(constant)
        return p

    def reaction(self, rid: str, reactants: dict, products: dict, law: str, *, reversible: bool = False,
                 local: dict | None = None):
        r = self.m.createReaction()
        r.setId(rid)
        r.setReversible(reversible)
        for sid, nu in reactants.items():
            ref = r.createReactant()
            ref.setSpecies(sid)
            ref.setStoichiometry(nu)
            ref.setConstant(True)
        for sid, nu in products.items():
            ref = r.createProduct()
            ref.setSpecies(sid)
            ref.setStoichiometry(nu)
            ref.setConstant(True)
        kl = r.createKineticLaw()
        for name, value in (local or {}).items():
            lp = kl.createLocalParameter()
            lp.setId(name)
            lp.setValue(value)
        kl.setMath(_math(law))
        return r

    def rate_rule(self, var: str, formula: str):
        rule = self.m.createRateRule()
        rule.setVariable(var)
        rule.setMath(_math(formula))

    def assignment_rule(self, var: str, formula: str):
        rule = self.m.createAssignmentRule()
        rule.setVariable(var)
        rule.setMath(_math(formula))

    def initial_assignment(self, var: str, formula: str):
        ia = self.m.createInitialAssignment()
        ia.setSymbol(var)
        ia.setMath(_math(formula))

    def function(self, fid: str, formula: str):
        fd = self.m.createFunctionDefinition()
        fd.setId(fid)
        fd.setMath(_math(formula))

    def write(self, path):
        assert libsbml.writeSBMLToFile(self.doc, str(path))
        return path


def _math(formula: str):
    node = libsbml.parseL3Formula(formula)   # test input written by hand (libsbml's own reader)
    assert node is not None, libsbml.getLastParseL3Error()
    return node


def _rhs(model, sid: str):
    return model.rhs[sid]


def _sym(model, sid: str) -> sp.Symbol:
    return model.symbols[sid]


def test_concentration_and_amount_species(tmp_path) -> None:
    b = Builder()
    b.compartment("V", 2.0)
    b.species("A", "V", conc=1.0)                  # concentration state
    b.species("B", "V", amount=3.0, hosu=True)     # amount state
    b.species("C", "V", amount=4.0)                # concentration state given by an amount: 4 / V
    b.parameter("k", 0.5)
    b.reaction("R1", {"A": 1}, {"B": 1, "C": 2}, "k * A * V")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    A, k, V = (_sym(m, s) for s in ("A", "k", "V"))
    assert sp.simplify(_rhs(m, "A") - (-k * A)) == 0            # d[A]/dt = -rate / V
    assert sp.simplify(_rhs(m, "B") - k * A * V) == 0            # dN_B/dt = rate
    assert sp.simplify(_rhs(m, "C") - 2 * k * A) == 0
    assert m.initial_values() == {"A": 1.0, "B": 3.0, "C": 2.0}
    assert not m.states["A"].amount and m.states["B"].amount


def test_reversible_law_local_parameters_and_stoichiometry(tmp_path) -> None:
    b = Builder()
    b.compartment("c", 1.0)
    b.species("A", "c", conc=2.0)
    b.species("B", "c", conc=0.0)
    b.reaction("R", {"A": 2}, {"B": 1}, "c * (kf * A^2 - kr * B)", reversible=True, local={"kf": 3.0, "kr": 0.5})
    m = import_sbml(b.write(tmp_path / "m.xml"))
    assert m.parameters["R.kf"] == 3.0 and m.parameters["R.kr"] == 0.5
    spec = m.to_spec()
    assert {"R_kf", "R_kr", "c"} <= set(spec.parameters)
    A, B = _sym(m, "A"), _sym(m, "B")
    kf, kr = sp.Symbol("R_kf", real=True), sp.Symbol("R_kr", real=True)
    assert sp.simplify(_rhs(m, "A") - (-2 * (kf * A**2 - kr * B))) == 0
    assert sp.simplify(_rhs(m, "B") - (kf * A**2 - kr * B)) == 0


def test_rate_rule_assignment_rule_and_boundary_species(tmp_path) -> None:
    b = Builder()
    b.compartment("c", 1.0)
    b.species("A", "c", conc=1.0)
    b.species("S", "c", conc=5.0, boundary=True)       # not changed by reactions
    b.parameter("p", 2.0, constant=False)              # a state through its rate rule
    b.parameter("a", 0.3)
    b.parameter("y", None, constant=False)             # defined by an assignment rule
    b.rate_rule("p", "-a * p")
    b.assignment_rule("y", "2 * p + S")
    b.reaction("R", {"S": 1}, {"A": 1}, "c * y")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    p, a, S = _sym(m, "p"), _sym(m, "a"), _sym(m, "S")
    assert set(m.states) == {"A", "S", "p"}
    assert _rhs(m, "S") == 0
    assert sp.simplify(_rhs(m, "A") - (2 * p + S)) == 0
    assert sp.simplify(_rhs(m, "p") - (-a * p)) == 0
    assert sp.simplify(m.expression("y") - (2 * p + S)) == 0
    assert m.initial_values()["p"] == 2.0


def test_initial_assignments_and_kept_parameters(tmp_path) -> None:
    b = Builder()
    b.compartment("c", 1.0)
    b.species("A", "c", conc=1.0)
    b.species("B", "c", conc=0.0)
    b.parameter("k", 2.0)
    b.parameter("q", 1.0)                          # given by an initial assignment: 3 k
    b.initial_assignment("A", "2 * k")
    b.initial_assignment("q", "3 * k + A")       # constant: uses A(0) = 2 k
    b.reaction("R", {"A": 1}, {"B": 1}, "c * q * A")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    assert "q" not in m.parameters
    k, A = _sym(m, "k"), _sym(m, "A")
    assert sp.simplify(_rhs(m, "A") - (-(5 * k) * A)) == 0
    assert m.initial_values() == {"A": 4.0, "B": 0.0}
    assert m.initial_values({"k": 1.0})["A"] == 2.0
    kept = import_sbml(tmp_path / "m.xml", keep={"q"})  # a PEtab table sets q: it stays a parameter
    assert kept.parameters["q"] == 1.0


def test_function_definitions_and_piecewise_in_time(tmp_path) -> None:
    b = Builder()
    b.compartment("c", 1.0)
    b.species("A", "c", conc=1.0)
    b.parameter("k", 0.5)
    b.parameter("T", 5.0)
    b.function("pulse", "lambda(x, t0, piecewise(x, time < t0, 0))")
    b.reaction("R", {}, {"A": 1}, "c * pulse(k, T)")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    assert _rhs(m, "A").has(sp.Piecewise)
    spec = m.to_spec()
    model = build_model(spec)
    # the breakpoint t = 5 is a grid point (the last stages of [2, 5] see the switched rate: ~1e-7)
    traj = simulate(model, np.array([0.0, 2.0, 5.0, 10.0]))
    assert np.allclose(traj["A"], [1.0, 2.0, 3.5, 3.5], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("law, kind, fn", [
    ("piecewise(u, u <= 1.5, 1.5)", sp.Min, min), ("piecewise(u, 1.5 > u, 1.5)", sp.Min, min),
    ("piecewise(u, u >= 1.5, 1.5)", sp.Max, max), ("piecewise(1.5, u < 1.5, u)", sp.Max, max),
])
def test_min_max_written_as_piecewise_import_as_min_max(tmp_path, law, kind, fn) -> None:
    """piecewise(x, x <= y, y) is min(x, y) (and its mirror images min/max): imported as such, so that a
    piecewise input substituted into it is not expanded into every combination of pieces."""
    b = Builder()
    b.compartment("c", 1.0)
    b.species("A", "c", conc=0.0)
    b.parameter("u", None, constant=False)
    b.assignment_rule("u", "piecewise(0.5 * time, time < 1, 2 + time, time < 2, 1)")
    b.reaction("R", {}, {"A": 1}, f"c * {law}")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    rate = _rhs(m, "A")
    assert isinstance(rate, kind)
    t = m.t
    for tv in (0.2, 1.0, 1.5, 2.5, 3.0):
        u = 0.5 * tv if tv < 1 else (2 + tv if tv < 2 else 1.0)
        assert float(rate.subs(t, tv)) == fn(u, 1.5)


def test_nested_min_of_piecewise_inputs_stays_small(tmp_path) -> None:
    """min(T, 1.5, 3 - T) as an L3V1 exporter writes it (a nested piecewise whose conditions repeat the
    inner piecewise) with T a sum of two piecewise inputs: sympy would expand each condition into all
    combinations of the inputs' pieces; imported as min it stays the size of the SBML."""
    b = Builder()
    b.compartment("c", 1.0)
    b.species("A", "c", conc=0.0)
    for pid, v in (("a", 1.0), ("b", 0.0)):
        b.parameter(pid, v)
    b.parameter("T", None, constant=False)
    ramp = ", ".join(f"0.3 * time + {0.1 * i}, time < {i + 1}" for i in range(8))
    steps = ", ".join(f"{i + 0.5}, time < {2 * i + 1}" for i in range(4))
    b.assignment_rule("T", f"a * piecewise({ramp}, 2) + b * piecewise({steps}, 0.1)")
    inner = "piecewise(T, T <= 1.5, 1.5)"
    b.reaction("R", {}, {"A": 1}, f"c * piecewise({inner}, {inner} <= 3 - T, 3 - T)")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    rate = _rhs(m, "A")
    assert isinstance(rate, sp.Min) and rate.count(sp.Piecewise) <= 6

    def rate_at(tv: float) -> float:
        T = 0.3 * tv + 0.1 * np.floor(tv) if tv < 8 else 2.0
        return min(T, 1.5, 3 - T)

    times = np.arange(0.0, 10.5, 0.5)
    fine = np.linspace(0.0, 10.0, 200001)
    vals = np.array([rate_at(tv) for tv in fine])
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (vals[1:] + vals[:-1]) * np.diff(fine))])
    traj = simulate(build_model(m.to_spec()), times)
    assert np.allclose(traj["A"], np.interp(times, fine, integral), rtol=1e-5, atol=1e-6)


def test_variable_compartment_with_rate_rule(tmp_path) -> None:
    b = Builder()
    b.compartment("V", 1.0, constant=False)
    b.species("C", "V", conc=2.0)
    b.parameter("r", 0.1)
    b.rate_rule("V", "r * V")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    C, r = _sym(m, "C"), _sym(m, "r")
    assert sp.simplify(_rhs(m, "C") - (-C * r)) == 0           # amount C V stays constant
    traj = simulate(build_model(m.to_spec()), np.array([0.0, 3.0]))
    assert np.isclose(traj["C"][-1] * traj["V"][-1], 2.0, rtol=1e-8)


def test_imported_spec_round_trips_and_matches_the_import(tmp_path) -> None:
    b = Builder()
    b.compartment("cyt", 1.4)
    b.compartment("nuc", 0.45)
    b.species("X", "cyt", conc=3.0)
    b.species("Y", "nuc", conc=0.0)
    b.parameter("k", 0.7)
    b.reaction("transport", {"X": 1}, {"Y": 1}, "cyt * k * X")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    spec = m.to_spec()
    assert loads_spec(spec.to_yaml()) == spec
    sym = build_symbolic(spec)
    for sid, e in m.rhs.items():
        assert sp.simplify(sym.equations()[m.names[sid]] - e) == 0
    assert {e.id for e in spec.interactions} == {"transport@cyt", "transport@nuc"}


def test_names_that_are_not_symode_names_are_mangled(tmp_path) -> None:
    b = Builder()
    b.compartment("c", 1.0)
    b.species("_A", "c", conc=1.0)
    b.parameter("exp", 0.1)        # a function name in symode's expression language
    b.reaction("R", {"_A": 1}, {}, "c * exp * _A")
    m = import_sbml(b.write(tmp_path / "m.xml"))
    assert m.names["_A"] == "s_A" and m.names["exp"] == "s_exp"
    build_symbolic(m.to_spec())


@pytest.mark.parametrize("construct, needle", [
    ("event", "event 'e1'"),
    ("algebraic", "algebraic rule"),
    ("fast", "reaction 'R': fast reactions"),
    ("delay", "'delay'"),
    ("nolaw", "reaction 'R': a reaction without a kinetic law"),
])
def test_unsupported_constructs_are_refused(tmp_path, construct: str, needle: str) -> None:
    b = Builder(3, 1) if construct == "fast" else Builder()
    b.compartment("c", 1.0)
    b.species("A", "c", conc=1.0)
    b.parameter("k", 1.0)
    r = b.reaction("R", {"A": 1}, {}, "delay(A, 1) * k" if construct == "delay" else "k * A")
    if construct == "event":
        ev = b.m.createEvent()
        ev.setId("e1")
        ev.setUseValuesFromTriggerTime(True)
        trig = ev.createTrigger()
        trig.setMath(_math("time > 1"))
        trig.setInitialValue(False)
        trig.setPersistent(True)
        ea = ev.createEventAssignment()
        ea.setVariable("A")
        ea.setMath(_math("0"))
    elif construct == "algebraic":
        rule = b.m.createAlgebraicRule()
        rule.setMath(_math("k - 1"))
    elif construct == "fast":
        r.setFast(True)
    elif construct == "nolaw":
        r.unsetKineticLaw()
    with pytest.raises(UnsupportedSBML) as info:
        import_sbml(b.write(tmp_path / "m.xml"))
    assert needle in str(info.value)
