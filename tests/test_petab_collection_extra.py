"""Benchmark-collection problems beyond the nine of ``tests/test_petab_benchmark.py``, vendored in
``tests/data/petab-benchmark-extra`` (see its README for sources and references): the llh at the nominal
parameters against a recorded reference, the llh against the ``petab`` library's own formula on
symode's simulations, and the llh gradient against central finite differences.

``reference-llh.tsv`` holds the references (``reference``), each in the convention it was recorded in
(the README says why): AMICI's recorded values as ``llh``; ``minus_2_llh`` (-2 llh, the collection's own
convention, recorded unchecked by AMICI); ``llh_log10_without_ln10`` (recorded before AMICI 0.10.20 fixed
its log10-normal density, which lacked the ln 10 of the Jacobian: reference = llh + n_log10 ln(ln 10) over
the n_log10 log10 measurements); and, for problems AMICI records no value for,
``llh_of_collection_simulations``: the PEtab llh of the simulation table the collection ships with the
problem (``simulatedData_<problem>.tsv``, simulated at the nominal parameters by another tool), which the
test recomputes with the ``petab`` library. ``llh_at_nominal`` is the PEtab llh they imply (the column
``bench/petab.py --root`` reads); the test compares symode with ``reference`` itself."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.petab_cases import assert_steady_states_agree, has_steady_states

pytest.importorskip("petab")
pytest.importorskip("libsbml")

ROOT = Path(__file__).resolve().parent / "data" / "petab-benchmark-extra"
REFERENCE = pd.read_csv(ROOT / "reference-llh.tsv", sep="\t").set_index("problem")
PROBLEMS = list(REFERENCE.index)
STEADY = [n for n in PROBLEMS if has_steady_states(ROOT / n)]

#: Finite-difference step on the parameter scales (ln theta for linear-scale parameters). Borghans is a
#: calcium oscillator whose spike times make the llh strongly curved: central differences at 1e-4 (log10)
#: are off by 30 % and converge to the adjoint as h -> 0 (4.1, 0.04, 4e-4 off at h = 1e-5, 1e-6, 1e-7).
STEP = {"Borghans_BiophysChem1997": 1e-6}

#: Weber pre-equilibrates to a steady state with slow modes (degradation rates 1e-4): its llh is
#: differentiated at tight steady-state tolerances so that the finite differences see the steady state.
TIGHT = dict(rtol=1e-11, atol=1e-13, ss_rtol=1e-11, ss_atol=1e-13)


def _objective(name: str, **options):
    from symode.petab.objective import PetabObjective
    from symode.petab.simulate import SolverOptions

    return PetabObjective.from_yaml(ROOT / name / f"{name}.yaml", validate=False,
                                    options=SolverOptions(**options))


def _n_log10(problem) -> int:
    """Measurements of log10-transformed observables."""
    obs = problem.petab.observable_df
    tr = obs.get("observableTransformation", pd.Series("lin", index=obs.index)).fillna("lin")
    return int(problem.petab.measurement_df["observableId"].map(tr).eq("log10").sum())


def _collection_simulations(name: str):
    """The simulation table the collection ships with a problem: ``simulatedData_<problem>.tsv`` (older
    layout: the simulations in a ``measurement`` column, a leading index column) or ``simulations.tsv``."""
    old = ROOT / name / f"simulatedData_{name}.tsv"
    if old.is_file():
        return pd.read_csv(old, sep="\t", index_col=0).rename(columns={"measurement": "simulation"})
    return pd.read_csv(ROOT / name / "simulations.tsv", sep="\t")


def _in_reference_convention(llh: float, convention: str, problem) -> float:
    if convention in ("llh", "llh_of_collection_simulations"):
        return llh
    if convention == "minus_2_llh":
        return -2.0 * llh
    if convention == "llh_log10_without_ln10":
        return llh + _n_log10(problem) * math.log(math.log(10.0))
    raise ValueError(convention)


def test_every_problem_is_vendored() -> None:
    assert PROBLEMS and all((ROOT / p / f"{p}.yaml").is_file() for p in PROBLEMS)
    assert (ROOT / "LICENSE").is_file() and (ROOT / "README.md").is_file()


@pytest.mark.parametrize("name", PROBLEMS)
def test_reference_table_is_consistent(name: str) -> None:
    """llh_at_nominal is the reference translated from its convention; a reference computed from the
    collection's simulation table is that table's PEtab llh."""
    import petab.v1 as petab

    from symode.petab import load_petab

    row = REFERENCE.loc[name]
    problem = load_petab(ROOT / name / f"{name}.yaml", validate=False)
    assert _in_reference_convention(float(row["llh_at_nominal"]), row["convention"], problem) == \
        pytest.approx(float(row["reference"]), rel=1e-14)
    if row["convention"] == "llh_of_collection_simulations":
        pr = problem.petab
        llh = petab.calculate_llh(pr.measurement_df, _collection_simulations(name), pr.observable_df,
                                  pr.parameter_df)
        assert llh == pytest.approx(float(row["reference"]), rel=1e-14)


@pytest.mark.parametrize("name", PROBLEMS)
def test_llh_at_nominal_matches_reference(name: str) -> None:
    import petab.v1 as petab

    obj = _objective(name)
    ev = obj.evaluate()
    ref, convention = float(REFERENCE.loc[name, "reference"]), REFERENCE.loc[name, "convention"]
    value = _in_reference_convention(ev.llh, convention, obj.problem)
    assert abs(value - ref) <= 1e-3 or abs(value - ref) <= 1e-5 * abs(ref), (ev.llh, value, ref)
    # the llh formula itself against the petab library's, on symode's simulations
    pr = obj.problem.petab
    want = petab.calculate_llh(pr.measurement_df, obj.simulation_table(ev), pr.observable_df, pr.parameter_df)
    assert ev.llh == pytest.approx(want, rel=1e-10, abs=1e-10)
    if convention == "llh_of_collection_simulations":  # and the simulations themselves
        theirs = _collection_simulations(name)["simulation"].to_numpy(dtype=float)
        assert np.allclose(ev.simulation, theirs, rtol=1e-5, atol=1e-8 * np.max(np.abs(theirs)))


@pytest.mark.slow
@pytest.mark.parametrize("name", PROBLEMS)
def test_gradient_matches_finite_differences(name: str) -> None:
    obj = _objective(name, **TIGHT)
    pr = obj.problem
    z = pr.to_scaled(pr.nominal)
    scales = [pr.scales[i] for i in np.nonzero(pr.estimated)[0]]
    # linear-scale parameters (all of them in PEtab v2 problems) are differenced in ln theta
    ln = np.array([s == "lin" and v > 0 for s, v in zip(scales, z, strict=True)])
    u = np.where(ln, np.log(np.where(ln, z, 1.0)), z)

    def f(uu: np.ndarray) -> float:
        return obj.evaluate(pr.from_scaled(np.where(ln, np.exp(uu), uu))).llh

    theta = pr.from_scaled(z)
    adjoint = obj.evaluate(theta, gradient=True).gradient
    grad_u = np.where(ln, adjoint * z, adjoint)
    h = STEP.get(name, 1e-4)   # fourth-order central differences
    fd = np.array([(-f(u + 2 * h * e) + 8 * f(u + h * e) - 8 * f(u - h * e) + f(u - 2 * h * e)) / (12 * h)
                   for e in np.eye(len(u))])
    assert np.max(np.abs(grad_u - fd)) <= 1e-3 * np.max(np.abs(fd)), (grad_u, fd)
    # also at the default solver options, as a fit computes it: Weber's pre-equilibration must not stop
    # while dx/dtheta is still far from its steady state (it was off by 1.7 in max-norm when it did)
    default = _objective(name).evaluate(theta, gradient=True).gradient
    assert np.max(np.abs(np.where(ln, default * z, default) - fd)) <= 1e-3 * np.max(np.abs(fd))
    # the steady states are polished by Newton's method, so forward and adjoint differentiate the same
    # steady state (before the polish they stopped the integration by different tests: Weber 2.6e-5)
    forward = obj.evaluate(theta, gradient=True, method="forward").gradient
    assert np.max(np.abs(forward - adjoint)) <= 1e-6 * np.max(np.abs(adjoint))


def test_extra_problems_with_steady_states_found() -> None:
    assert "Weber_BMC2015" in STEADY, STEADY


@pytest.mark.parametrize("name", STEADY)
def test_steady_states_agree_between_plain_forward_and_adjoint(name: str) -> None:
    assert_steady_states_agree(_objective(name))
