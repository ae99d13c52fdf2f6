"""Helpers of the PEtab tests: where the test-suite and Benchmark-collection problems are, and how a
test-suite case is checked against its solution file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
VENDORED = REPO / "tests" / "data" / "petab"
VENDORED_V2 = REPO / "tests" / "data" / "petab_v2"
SHARED_PETAB = Path(os.environ.get("SYMODE_SHARED_PETAB", REPO.parent / "shared" / "petab"))
SUITE_V1 = SHARED_PETAB / "test-suite" / "v1.0.0" / "sbml"
SUITE_V2 = SHARED_PETAB / "test-suite" / "v2.0.0" / "sbml"
BENCHMARK = SHARED_PETAB / "benchmark"


def assert_steady_states_agree(obj):
    """Plain evaluation, forward sensitivities and the recorded adjoint of a PEtab objective with steady
    states reach the same (Newton-polished) steady state: llh to 1e-9 relative, gradients to 1e-6 in
    max-norm. Returns the adjoint evaluation."""
    import pytest

    assert any(exp.preeq is not None or np.any(exp.time_index < 0) for exp in obj.problem.experiments)
    plain = obj.evaluate()
    forward = obj.evaluate(gradient=True, method="forward")
    adjoint = obj.evaluate(gradient=True)
    assert forward.llh == pytest.approx(plain.llh, rel=1e-9)
    assert adjoint.llh == pytest.approx(plain.llh, rel=1e-9)
    assert np.max(np.abs(forward.gradient - adjoint.gradient)) <= 1e-6 * np.max(np.abs(adjoint.gradient))
    return adjoint


def has_steady_states(problem: Path) -> bool:
    """Whether a problem's tables ask for a steady state (a pre-equilibration condition, a measurement at
    t = inf, or a v2 experiment period starting at -inf): read from its TSV files, without building it."""
    for f in sorted(problem.glob("*.tsv")):
        if f.name.startswith(("simulatedData", "simulations")):
            continue
        table = pd.read_csv(f, sep="\t")
        if "preequilibrationConditionId" in table and table["preequilibrationConditionId"].notna().any():
            return True
        if "time" in table and np.isinf(pd.to_numeric(table["time"], errors="coerce")).any():
            return True
    return False


def case_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("[0-9][0-9][0-9][0-9]") if p.is_dir()) if root.is_dir() else []


def _differences(ev: Any, sol: dict, sim_err: float) -> dict:
    """The evaluation's differences from a case's solution, with the case's tolerances."""
    out = {"llh": abs(ev.llh - sol["llh"]), "chi2": abs(ev.chi2 - sol["chi2"]), "sim": sim_err,
           "tol_llh": sol["tol_llh"], "tol_chi2": sol["tol_chi2"], "tol_sim": sol["tol_simulations"]}
    if "log_prior" in sol:   # prior distributions: every parameter's log-prior and the log-posterior
        assert ev.log_prior_terms is not None and set(ev.log_prior_terms) == set(sol["log_prior"])
        out["log_prior"] = max(abs(ev.log_prior_terms[k] - v) for k, v in sol["log_prior"].items())
        out["tol_log_prior"] = sol["tol_log_prior"]
        out["posterior"] = abs(ev.unnorm_log_posterior - sol["unnorm_log_posterior"])
        out["tol_posterior"] = sol["tol_unnorm_log_posterior"]
    return out


def check_case(case: Path) -> dict:
    """Evaluate a test-suite case at its nominal parameters and compare with its solution; returns the
    differences and tolerances."""
    from symode.petab.objective import PetabObjective

    cid = case.name
    obj = PetabObjective.from_yaml(case / f"_{cid}.yaml")
    ev = obj.evaluate()
    sol = yaml.safe_load((case / f"_{cid}_solution.yaml").read_text())
    want = pd.concat([pd.read_csv(case / f, sep="\t") for f in sol["simulation_files"]], ignore_index=True)
    got = obj.simulation_table(ev)
    keys = [c for c in ("observableId", "simulationConditionId", "preequilibrationConditionId", "time")
            if c in want.columns]
    assert len(got) == len(want)
    # rows in the same order as the measurement table; check the keys agree
    for k in keys:
        assert [str(v) for v in got[k].fillna("")] == [str(v) for v in want[k].fillna("")], k
    sim_err = float(np.max(np.abs(got["simulation"].to_numpy(float) - want["simulation"].to_numpy(float))))
    return _differences(ev, sol, sim_err)


def check_case_v2(case: Path) -> dict:
    """:func:`check_case` for a PEtab v2 case (simulation rows in the order of the measurement table,
    matched by observable and time)."""
    from symode.petab.objective import PetabObjective

    cid = case.name
    obj = PetabObjective.from_yaml(case / f"_{cid}.yaml", validate=False)
    ev = obj.evaluate()
    sol = yaml.safe_load((case / f"_{cid}_solution.yaml").read_text())
    want = pd.concat([pd.read_csv(case / f, sep="\t") for f in sol["simulation_files"]], ignore_index=True)
    got = obj.simulation_table(ev)
    assert len(got) == len(want)
    assert list(got["observableId"]) == list(want["observableId"])
    assert np.allclose(got["time"].to_numpy(float), want["time"].to_numpy(float))
    sim_err = float(np.max(np.abs(got["simulation"].to_numpy(float) - want["simulation"].to_numpy(float))))
    return _differences(ev, sol, sim_err)
