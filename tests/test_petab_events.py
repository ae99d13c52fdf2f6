"""Time-triggered SBML events and experiments with several periods: a hand-written PEtab v1 problem with
a dose and a parameter switch checked against its analytic solution, and the plain, forward and adjoint
gradients against central finite differences and each other (also on vendored v2 cases with periods);
state-triggered events and the unsupported combinations are refused with a message."""

from __future__ import annotations

import math
import shutil

import libsbml
import numpy as np
import pytest

from symode.petab.objective import PetabObjective
from symode.petab.problem import PetabError, load_petab
from symode.petab.sbml import import_sbml
from symode.petab.sbml_math import UnsupportedSBML
from symode.petab.simulate import SolverOptions
from tests.petab_cases import VENDORED_V2

TIGHT = SolverOptions(rtol=1e-11, atol=1e-13)
SIGMA = 0.1
TIMES = [0.0, 2.0, 5.0, 7.5, 10.0, 12.0, 15.0]
NOMINAL = {"k1": 0.3, "k2": 0.05, "dose": 2.0, "t_dose": 5.0, "x_init": 1.5}


def _math(text: str):
    node = libsbml.parseL3Formula(text)
    assert node is not None, text
    return node


def _event(m, eid: str, trigger: str, assignments: dict[str, str], *, initial_value: bool = True,
           delay: str | None = None) -> None:
    ev = m.createEvent()
    ev.setId(eid)
    ev.setUseValuesFromTriggerTime(True)
    trig = ev.createTrigger()
    trig.setMath(_math(trigger))
    trig.setInitialValue(initial_value)
    trig.setPersistent(True)
    if delay is not None:
        ev.createDelay().setMath(_math(delay))
    for var, value in assignments.items():
        ea = ev.createEventAssignment()
        ea.setVariable(var)
        ea.setMath(_math(value))


def dose_model(path, events=None) -> None:
    """dx/dt = -k x in compartment c (size 1); k = k1 at first (initial assignment); the events: a dose
    x := x + dose at time >= t_dose and a switch k := k2 at time > 10 (k becomes a state)."""
    doc = libsbml.SBMLDocument(3, 1)
    m = doc.createModel()
    m.setId("dose_switch")
    c = m.createCompartment()
    c.setId("c"), c.setSize(1.0), c.setConstant(True), c.setSpatialDimensions(3)
    s = m.createSpecies()
    s.setId("x"), s.setCompartment("c"), s.setInitialConcentration(1.0), s.setHasOnlySubstanceUnits(False)
    s.setBoundaryCondition(False), s.setConstant(False)
    for pid, value, constant in (("k", 0.0, False), ("k1", 0.3, True), ("k2", 0.05, True), ("dose", 2.0, True),
                                 ("t_dose", 5.0, True)):
        p = m.createParameter()
        p.setId(pid), p.setValue(value), p.setConstant(constant)
    ia = m.createInitialAssignment()
    ia.setSymbol("k"), ia.setMath(_math("k1"))
    r = m.createReaction()
    r.setId("decay"), r.setReversible(False), r.setFast(False)
    ref = r.createReactant()
    ref.setSpecies("x"), ref.setStoichiometry(1.0), ref.setConstant(True)
    r.createKineticLaw().setMath(_math("c * k * x"))
    for eid, trigger, assignments in events if events is not None else (
            ("dose_event", "time >= t_dose", {"x": "x + dose"}), ("switch", "time > 10", {"k": "k2"})):
        _event(m, eid, trigger, assignments)
    libsbml.writeSBMLToFile(doc, str(path))


def write_problem(d, *, events=None, preeq: bool = False, inf: bool = False):
    """A PEtab v1 problem around :func:`dose_model` in directory ``d``: x(0) = x_init from the condition
    table; observables x and k*x (k a state once events assign it); every parameter estimated."""
    dose_model(d / "model.xml", events)
    (d / "conditions.tsv").write_text("conditionId\tx\nc0\tx_init\n")
    (d / "observables.tsv").write_text("observableId\tobservableFormula\tnoiseFormula\n"
                                       f"obs_x\tx\t{SIGMA}\nobs_rate\tk * x\t{SIGMA}\n")
    rows = ["observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tmeasurement"]
    rng = np.random.default_rng(1)
    for t in TIMES + ([math.inf] if inf else []):
        for obs in ("obs_x", "obs_rate"):
            rows.append(f"{obs}\t{'c0' if preeq else ''}\tc0\t{t}\t{rng.uniform(0.1, 2.0):.6f}")
    (d / "measurements.tsv").write_text("\n".join(rows) + "\n")
    params = ["parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate"]
    for pid, value in NOMINAL.items():
        scale = "log10" if pid in ("k1", "k2") else "lin"
        params.append(f"{pid}\t{scale}\t{1e-3 if scale == 'log10' else 0}\t{20}\t{value}\t1")
    (d / "parameters.tsv").write_text("\n".join(params) + "\n")
    (d / "problem.yaml").write_text("format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
                                    "- condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
                                    "  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n")
    return d / "problem.yaml"


def analytic(t: float, k1: float, k2: float, dose: float, t_dose: float, x_init: float) -> tuple[float, float]:
    """(x, k) at t: the dose at t_dose (included at t = t_dose), the switch just after t = 10."""
    def x_before_switch(s: float) -> float:
        return x_init * math.exp(-k1 * s) + (dose * math.exp(-k1 * (s - t_dose)) if s >= t_dose else 0.0)
    if t <= 10.0:
        return x_before_switch(t), k1
    return x_before_switch(10.0) * math.exp(-k2 * (t - 10.0)), k2


def _llh(obj, values: dict[str, float]) -> float:
    m = obj.problem.measurements
    out = 0.0
    for obs, t, y in zip(m["observableId"], m["time"], m["measurement"], strict=True):
        x, k = analytic(float(t), **values)
        sim = x if obs == "obs_x" else k * x
        out -= 0.5 * math.log(2 * math.pi * SIGMA**2) + 0.5 * ((y - sim) / SIGMA) ** 2
    return out


@pytest.fixture(scope="module")
def dose(tmp_path_factory):
    return PetabObjective.from_yaml(write_problem(tmp_path_factory.mktemp("dose")), options=TIGHT)


def test_events_are_imported_as_resets(dose) -> None:
    sbml = dose.problem.sbml
    assert set(sbml.states) == {"x", "k"} and "k" not in sbml.parameters   # k: assigned by an event, a state
    ev = {e.id: e for e in sbml.events}
    assert not ev["dose_event"].strict and ev["switch"].strict
    assert str(ev["dose_event"].time) == "t_dose" and str(ev["switch"].time) == "10"


def test_llh_matches_the_analytic_solution(dose) -> None:
    ev = dose.evaluate()
    assert ev.llh == pytest.approx(_llh(dose, NOMINAL), rel=1e-9)
    # the measurement at t = t_dose sees the dose (time >= t_dose), the one at t = 10 the old k (time > 10)
    m = dose.problem.measurements
    at5 = (m["time"] == 5.0) & (m["observableId"] == "obs_x")
    assert ev.simulation[at5.to_numpy()][0] == pytest.approx(1.5 * math.exp(-1.5) + 2.0, rel=1e-9)
    at10 = (m["time"] == 10.0) & (m["observableId"] == "obs_rate")
    assert ev.simulation[at10.to_numpy()][0] == pytest.approx(0.3 * analytic(10.0, **NOMINAL)[0], rel=1e-9)
    # other parameter values too (the dose time moves)
    values = {"k1": 0.2, "k2": 0.1, "dose": 1.0, "t_dose": 3.3, "x_init": 0.7}
    assert dose.evaluate(dose.problem.theta(values)).llh == pytest.approx(_llh(dose, values), rel=1e-9)


def _central_differences(obj, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    pr = obj.problem
    z0 = pr.to_scaled(theta)
    out = np.zeros(len(z0))
    for i in range(len(z0)):
        up, down = z0.copy(), z0.copy()
        up[i] += h
        down[i] -= h
        out[i] = (obj.evaluate(pr.from_scaled(up)).llh - obj.evaluate(pr.from_scaled(down)).llh) / (2 * h)
    return out


def _check_gradients(obj, theta: np.ndarray | None = None, rtol: float = 1e-6) -> None:
    theta = obj.problem.nominal if theta is None else theta
    plain = obj.evaluate(theta)
    adjoint = obj.evaluate(theta, gradient=True)
    forward = obj.evaluate(theta, gradient=True, method="forward")
    assert adjoint.llh == pytest.approx(plain.llh, rel=1e-12) and forward.llh == pytest.approx(plain.llh, rel=1e-12)
    fd = _central_differences(obj, theta)
    scale = np.max(np.abs(fd))
    assert np.max(np.abs(adjoint.gradient - fd)) <= rtol * scale, (adjoint.gradient, fd)
    assert np.max(np.abs(forward.gradient - fd)) <= rtol * scale, (forward.gradient, fd)
    assert np.max(np.abs(forward.gradient - adjoint.gradient)) <= 1e-9 * scale


def test_gradients_through_events(dose) -> None:
    """Resets x := x + dose (depends on the state and a parameter), k := k2 (a parameter becomes a
    state), the dose's time t_dose estimated (the event time moves with theta; not at a measurement time,
    where the llh jumps)."""
    theta = dose.problem.theta({"t_dose": 4.3})
    _check_gradients(dose, theta)
    g = dict(zip(dose.problem.estimated_ids, dose.evaluate(theta, gradient=True).gradient, strict=True))
    assert abs(g["t_dose"]) > 1.0 and abs(g["dose"]) > 1.0   # both matter


@pytest.mark.parametrize("case", ["0022", "0028", "0030"])
def test_gradients_through_periods(case, tmp_path) -> None:
    """v2 periods: parameters and compartments changed at t = 10, a species set to an expression of
    itself at t = 7, an event at the same time as a period's changes."""
    shutil.copytree(VENDORED_V2 / case, tmp_path / case)
    _check_gradients(PetabObjective.from_yaml(tmp_path / case / f"_{case}.yaml", validate=False, options=TIGHT))


def test_initial_value_of_a_trigger_that_is_true_at_the_start(tmp_path) -> None:
    """``time >= 0`` is true at t = 0: the event fires there if its trigger's initialValue is false."""
    for initial_value, expected in ((False, 1.5 + 2.0), (True, 1.5)):
        d = tmp_path / str(initial_value)
        d.mkdir()
        write_problem(d, events=[])
        doc = libsbml.readSBMLFromFile(str(d / "model.xml"))
        _event(doc.getModel(), "at_start", "time >= 0", {"x": "x + dose"}, initial_value=initial_value)
        libsbml.writeSBMLToFile(doc, str(d / "model.xml"))
        obj = PetabObjective.from_yaml(d / "problem.yaml", options=TIGHT)
        at0 = ((obj.problem.measurements["time"] == 0) & (obj.problem.measurements["observableId"] == "obs_x"))
        assert obj.evaluate().simulation[at0.to_numpy()][0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("trigger, needle", [
    ("x > 1", "event 'e': the trigger depends on 'x': state-triggered events are not supported"),
    ("time >= 2 && time < 4", "is not of the form time >= c"),
    ("time < 4", "becomes false as time grows"),
])
def test_unsupported_triggers_are_refused(tmp_path, trigger: str, needle: str) -> None:
    dose_model(tmp_path / "m.xml", [("e", trigger, {"x": "0"})])
    with pytest.raises(UnsupportedSBML, match=needle):
        import_sbml(tmp_path / "m.xml", events=True)


def test_delays_and_imports_without_events_are_refused(tmp_path) -> None:
    dose_model(tmp_path / "m.xml")
    with pytest.raises(UnsupportedSBML, match="event 'dose_event': SBML events are not supported"):
        import_sbml(tmp_path / "m.xml")   # the spec alone would drop them
    doc = libsbml.readSBMLFromFile(str(tmp_path / "m.xml"))
    _event(doc.getModel(), "late", "time >= 1", {"x": "0"}, delay="2")
    libsbml.writeSBMLToFile(doc, str(tmp_path / "m.xml"))
    with pytest.raises(UnsupportedSBML, match="event 'late': event delays are not supported"):
        import_sbml(tmp_path / "m.xml", events=True)


@pytest.mark.parametrize("what, needle", [
    ("preeq", "pre-equilibration in a model with SBML events is not supported"),
    ("inf", "measurements at t = inf with SBML events are not supported"),
])
def test_events_with_steady_states_are_refused(tmp_path, what: str, needle: str) -> None:
    path = write_problem(tmp_path, preeq=what == "preeq", inf=what == "inf")
    with pytest.raises(PetabError, match=needle):
        load_petab(path, validate=False)


def test_zero_rate_state_before_others() -> None:
    """A state with dx/dt = 0 (as a parameter that only events change) ahead of others keeps its value
    and the others get their own rates (the compiled right-hand side is dense)."""
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate
    from symode.spec import spec_from_dict

    spec = spec_from_dict({"symode": 1, "name": "zero_rate_first",
                           "states": {"k": {"role": "other", "x0": 5.0}, "x": {"role": "other", "x0": 1.0}},
                           "parameters": {"r": {"value": 2.0, "scale": "lin", "estimate": False}},
                           "interactions": [{"type": "custom", "id": "grow", "rate": "r",
                                             "stoichiometry": {"x": 1.0}}]})
    model = build_model(spec)
    assert model.backend.rhs(0.0, np.array([5.0, 1.0]), np.array([2.0]), np.zeros(0)) == pytest.approx([0.0, 2.0])
    assert simulate(model, np.array([0.0, 1.0, 2.0])).x == pytest.approx(np.array([[5, 1], [5, 3], [5, 5.0]]))


def _conversion(t: float, a0: float, b0: float, k1: float, k2: float) -> float:
    """A(t) of A <-> B (rates k1 A, k2 B) from A(0) = a0, B(0) = b0."""
    a_inf = k2 * (a0 + b0) / (k1 + k2)
    return a_inf + (a0 - a_inf) * math.exp(-(k1 + k2) * t)


def test_observable_uses_the_parameters_of_its_period(tmp_path) -> None:
    """A period at t = 7 sets A := A + 5 and k1 := 0.5: measurements from t = 7 on (t = 7 included) see
    the new k1 in the observable k1 * A, and A evolves with it (analytic solution of A <-> B)."""
    d = tmp_path / "case"
    shutil.copytree(VENDORED_V2 / "0028", d)
    (d / "_conditions.tsv").write_text("conditionId\ttargetId\ttargetValue\ncondition1\tA\tA + 5.0\n"
                                       "condition1\tk1\t0.5\n")
    (d / "_observables.tsv").write_text("observableId\tobservableFormula\tnoiseFormula\tnoiseDistribution\n"
                                        "obs_ka\tk1 * A\t0.5\tnormal\n")
    times = [0.0, 5.0, 7.0, 10.0]
    (d / "_measurements.tsv").write_text("observableId\texperimentId\ttime\tmeasurement\n" + "".join(
        f"obs_ka\texperiment1\t{t}\t1.0\n" for t in times))
    obj = PetabObjective.from_yaml(d / "_0028.yaml", validate=False, options=TIGHT)
    k1, k2 = 0.8, 0.6
    a7 = _conversion(7.0, 1.0, 1.0, k1, k2)
    b7 = 2.0 - a7
    want = [k1 * _conversion(0.0, 1, 1, k1, k2), k1 * _conversion(5.0, 1, 1, k1, k2), 0.5 * (a7 + 5.0),
            0.5 * _conversion(3.0, a7 + 5.0, b7, 0.5, k2)]
    assert obj.evaluate().simulation == pytest.approx(want, rel=1e-9)
    _check_gradients(obj)


def test_measurement_before_the_start_is_refused(tmp_path) -> None:
    d = tmp_path / "case"
    shutil.copytree(VENDORED_V2 / "0029", d)
    with open(d / "_measurements.tsv", "a") as f:
        f.write("\tobs_a\te1\t2.0\t0.5\t\t\n")
    with pytest.raises(PetabError, match=r"a measurement at t = 2, before the experiment starts \(t = 5\)"):
        load_petab(d / "_0029.yaml", validate=False)
