"""Steady states polished by Newton's method (symode.petab.steadystate): the polish keeps conserved totals,
refuses singular Jacobians that are not conservation laws, and makes plain evaluation, forward and adjoint
gradients reach the same steady state; the derivative maps agree with finite differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symode.petab.steadystate import newton_polish, restricted_inverse

pytest.importorskip("petab")
libsbml = pytest.importorskip("libsbml")


class Linear:
    """dx/dt = K(p) x, as the compiled backends give it (rhs, jac_x, jac_p)."""

    def __init__(self, K, dK):
        self.K, self.dK = K, dK

    def rhs(self, t, x, p, U):
        return self.K(p) @ x

    def jac_x(self, t, x, p, U):
        return self.K(p)

    def jac_p(self, t, x, p, U):
        return np.stack([dk @ x for dk in self.dK(p)], axis=1)


def _isomerisation(p):
    """A <-> B <-> C with rates p: A + B + C is conserved."""
    k1, k2, k3, k4 = p
    return np.array([[-k1, k2, 0.0], [k1, -k2 - k3, k4], [0.0, k3, -k4]])


def _d_isomerisation(p):
    out = []
    for i in range(4):
        e = np.zeros(4)
        e[i] = 1.0
        out.append(_isomerisation(e))
    return out


def _weights(x):
    return 1e-8 + 1e-6 * np.abs(x)


def _step_weights(x):
    return 1e-10 + 1e-8 * np.abs(x)


def test_polish_keeps_the_conserved_total_and_finds_the_steady_state() -> None:
    p = np.array([1.0, 2.0, 0.5, 0.25])
    backend = Linear(_isomerisation, _d_isomerisation)
    x_T = np.array([0.6, 0.3, 0.15])   # total 1.05, not at steady state
    nw = newton_polish(backend, 0.0, x_T, p, np.zeros(0), _weights, _step_weights)
    assert nw is not None and nw.n_conserved == 1
    assert nw.x.sum() == pytest.approx(x_T.sum(), rel=1e-14)
    # A : B : C = 1 : k1/k2 : k1 k3/(k2 k4)
    ratio = np.array([1.0, p[0] / p[1], p[0] * p[2] / (p[1] * p[3])])
    assert np.allclose(nw.x, x_T.sum() * ratio / ratio.sum(), rtol=1e-12)


def test_polish_derivatives_match_finite_differences() -> None:
    """dx* = (I - A J) dx_T - A f_p dp, and the reverse map gives the same numbers."""
    backend = Linear(_isomerisation, _d_isomerisation)
    p = np.array([1.0, 2.0, 0.5, 0.25])
    x_T = np.array([0.6, 0.3, 0.15])

    def solve(x, q):
        return newton_polish(backend, 0.0, x, q, np.zeros(0), _weights, _step_weights).x

    nw = newton_polish(backend, 0.0, x_T, p, np.zeros(0), _weights, _step_weights)
    G = nw.sensitivities(np.hstack([np.eye(3), np.zeros((3, 4))]), np.hstack([np.zeros((4, 3)), np.eye(4)]))
    h = 1e-6
    fd = np.column_stack([(solve(x_T + h * e, p) - solve(x_T - h * e, p)) / (2 * h) for e in np.eye(3)]
                         + [(solve(x_T, p + h * e) - solve(x_T, p - h * e)) / (2 * h) for e in np.eye(4)])
    assert np.allclose(G, fd, atol=1e-8)
    v = np.array([0.3, -1.0, 2.0])
    vx, gp = nw.adjoint(v)
    assert np.allclose(np.concatenate([vx, gp]), v @ G, atol=1e-12)


def test_singular_jacobian_that_is_no_conservation_law_is_refused() -> None:
    """dx/dt = (-x2, 0): J is singular (rank 1) with a zero eigenvalue in its own range (a Jordan block),
    so no Newton step stays in range(J): the polish returns None and the caller keeps integrating."""
    backend = Linear(lambda p: np.array([[0.0, -1.0], [0.0, 0.0]]), lambda p: [])
    assert restricted_inverse(np.array([[0.0, -1.0], [0.0, 0.0]])) is None
    assert newton_polish(backend, 0.0, np.array([1.0, 1e-9]), np.zeros(0), np.zeros(0), _weights,
                         _step_weights) is None


def test_states_that_nothing_changes_stay_where_they_are() -> None:
    """J = 0 and f = 0 (every state constant): the polish accepts the state and passes derivatives
    through unchanged; J = 0 with f != 0 (constant production) is no steady state and is refused."""
    still = Linear(lambda p: np.zeros((2, 2)), lambda p: [np.zeros((2, 2))])
    nw = newton_polish(still, 0.0, np.array([1.0, 2.0]), np.zeros(1), np.zeros(0), _weights, _step_weights)
    assert nw is not None and nw.n_conserved == 2 and np.array_equal(nw.x, [1.0, 2.0])
    G = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(nw.sensitivities(G, np.zeros((1, 3))), G)

    class Production(Linear):
        def rhs(self, t, x, p, U):
            return np.full(2, 1e-7)   # small enough for the integration's test, not for the polish

    assert newton_polish(Production(lambda p: np.zeros((2, 2)), lambda p: []), 0.0, np.array([1.0, 2.0]),
                         np.zeros(0), np.zeros(0), _weights, _step_weights) is None


def test_slow_mode_taken_for_a_conservation_law_is_refused() -> None:
    """A decay 1e-13 times slower than the other looks singular; Newton cannot remove its residual, so
    the polish is refused rather than accepting a state that is not a steady state."""
    backend = Linear(lambda p: np.diag([-1.0, -1e-13]), lambda p: [])
    assert newton_polish(backend, 0.0, np.array([1e-9, 1.0]), np.zeros(0), np.zeros(0),
                         lambda x: np.full(2, 1e-14), _step_weights) is None


# -- a PEtab problem with conserved moieties and pre-equilibration --------------------------------------

def _sbml(path: Path) -> None:
    """E + S <-> ES -> E + P, P -> S: enzyme total E + ES and substrate total S + ES + P are conserved."""
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("enzyme")
    c = m.createCompartment()
    c.setId("cell"), c.setSize(1.0), c.setConstant(True), c.setSpatialDimensions(3)
    for sid, x0 in [("E", 1.0), ("S", 5.0), ("ES", 0.0), ("P", 0.0)]:
        s = m.createSpecies()
        s.setId(sid), s.setCompartment("cell"), s.setInitialConcentration(x0)
        s.setHasOnlySubstanceUnits(False), s.setBoundaryCondition(False), s.setConstant(False)
    for pid, v in [("kon", 2.0), ("koff", 1.0), ("kcat", 0.5), ("krec", 0.2)]:
        q = m.createParameter()
        q.setId(pid), q.setValue(v), q.setConstant(True)
    for rid, reactants, products, law in [("bind", ["E", "S"], ["ES"], "cell * (kon * E * S - koff * ES)"),
                                          ("cat", ["ES"], ["E", "P"], "cell * kcat * ES"),
                                          ("rec", ["P"], ["S"], "cell * krec * P")]:
        r = m.createReaction()
        r.setId(rid), r.setReversible(rid == "bind")
        for sid in reactants:
            ref = r.createReactant()
            ref.setSpecies(sid), ref.setStoichiometry(1.0), ref.setConstant(True)
        for sid in products:
            ref = r.createProduct()
            ref.setSpecies(sid), ref.setStoichiometry(1.0), ref.setConstant(True)
        r.createKineticLaw().setMath(libsbml.parseL3Formula(law))
    assert libsbml.writeSBMLToFile(doc, str(path))


def _problem(tmp_path: Path) -> Path:
    _sbml(tmp_path / "model.xml")
    (tmp_path / "conditions.tsv").write_text("conditionId\tkcat\tS\n"
                                             "pre\tkcat_pre\tNaN\n"
                                             "stim\tkcat_stim\ts_add\n")
    (tmp_path / "observables.tsv").write_text(
        "observableId\tobservableFormula\tnoiseFormula\n"
        "obs_p\tP\tnoiseParameter1_obs_p\n"
        "obs_es\tscale_es * ES\t0.05\n")
    rows = ["observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters"]
    for t, mp, mes in [(0.0, 1.2, 0.4), (0.5, 1.0, 0.6), (2.0, 1.5, 0.7), (10.0, 2.9, 0.5), ("inf", 3.5, 0.45)]:
        rows.append(f"obs_p\tpre\tstim\t{t}\t{mp}\tsigma_p")
        rows.append(f"obs_es\tpre\tstim\t{t}\t{mes}\t")
    (tmp_path / "measurements.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "parameters.tsv").write_text(
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
        "kon\tlog10\t0.01\t100\t2.0\t1\n"
        "koff\tlog10\t0.01\t100\t1.0\t1\n"
        "kcat_stim\tlog10\t0.01\t100\t0.5\t1\n"
        "kcat_pre\tlog10\t0.0001\t100\t0.005\t1\n"
        "krec\tlog\t0.0001\t100\t0.001\t1\n"
        "s_add\tlin\t0\t20\t3.0\t1\n"
        "scale_es\tlin\t0.1\t10\t1.5\t1\n"
        "sigma_p\tlog10\t0.01\t10\t0.3\t1\n")
    (tmp_path / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- sbml_files: [model.xml]\n"
        "  condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n")
    return tmp_path / "problem.yaml"


def _objective(path: Path, **options):
    from symode.petab.objective import PetabObjective
    from symode.petab.simulate import SolverOptions

    return PetabObjective.from_yaml(path, options=SolverOptions(**options))


def test_conserved_moieties_preequilibration_is_polished(tmp_path) -> None:
    obj = _objective(_problem(tmp_path))
    sim = obj.simulator
    exp = obj.problem.experiments[0]
    res = sim.run(exp, obj.problem.nominal)
    ss = res.preeq
    assert ss.newton is not None and ss.newton.n_conserved == 2
    names = list(obj.model.states)
    x = dict(zip(names, ss.x, strict=True))
    assert x["E"] + x["ES"] == pytest.approx(1.0, rel=1e-13)
    assert x["S"] + x["ES"] + x["P"] == pytest.approx(5.0, rel=1e-13)
    assert np.max(np.abs(sim.backend.rhs(0.0, ss.x, res.preeq.p, np.zeros(0)))) < 1e-13
    # the t = inf state of the simulation condition: S reset to s_add, so the substrate total is s_add + ES + P
    inf = dict(zip(names, res.x_inf, strict=True))
    assert inf["S"] + inf["ES"] + inf["P"] == pytest.approx(3.0 + x["ES"] + x["P"], rel=1e-12)


def test_plain_forward_and_adjoint_agree_with_conserved_moieties(tmp_path) -> None:
    path = _problem(tmp_path)
    obj = _objective(path)
    plain = obj.evaluate()
    forward = obj.evaluate(gradient=True, method="forward")
    adjoint = obj.evaluate(gradient=True)
    assert forward.llh == pytest.approx(plain.llh, rel=1e-10)
    assert adjoint.llh == pytest.approx(plain.llh, rel=1e-10)
    assert np.allclose(forward.gradient, adjoint.gradient, rtol=1e-7, atol=1e-9 * np.max(np.abs(adjoint.gradient)))
    # the polished steady state is the one a long, tight integration reaches (the slow recycling,
    # krec = 1e-3, leaves the integration's own stop 3e-5 relative away in llh)
    tight = _objective(path, rtol=1e-12, atol=1e-14, ss_rtol=1e-12, ss_atol=1e-14, newton=False).evaluate()
    assert plain.llh == pytest.approx(tight.llh, rel=1e-8)
    # and the gradient is that of the llh
    pr = obj.problem
    z = pr.to_scaled(pr.nominal)
    h = 1e-5
    fd = np.array([(obj.evaluate(pr.from_scaled(z + h * e)).llh - obj.evaluate(pr.from_scaled(z - h * e)).llh)
                   / (2 * h) for e in np.eye(len(z))])
    assert np.all(np.abs(fd) > 1e-4)
    assert np.allclose(adjoint.gradient, fd, rtol=1e-5, atol=1e-7 * np.max(np.abs(fd)))


def test_without_newton_the_old_integration_tests_still_work(tmp_path) -> None:
    obj = _objective(_problem(tmp_path), newton=False)
    plain = obj.evaluate()
    forward = obj.evaluate(gradient=True, method="forward")
    adjoint = obj.evaluate(gradient=True)
    assert forward.llh == pytest.approx(plain.llh, rel=1e-6)
    assert np.allclose(forward.gradient, adjoint.gradient, rtol=1e-4, atol=1e-6 * np.max(np.abs(adjoint.gradient)))
