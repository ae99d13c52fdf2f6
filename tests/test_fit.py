"""Fitting: recovery on a short informative data set, bad-data errors, interrupted fits, multi-start.
(The optimiser, the transform and the start sampler: tests/test_optim.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symode.cli.main import main
from symode.fit import FAIL_RESIDUAL, FitProblem, fit
from symode.solve.synth import dataset_to_csv_text, make_dataset, noisy_observations, smooth_dilution
from symode.spec import load_spec

from .conftest import SPECS

TRUTH = {"gA": 0.5, "gB": 2.0, "vA": 0.0003, "vB": 0.006, "muA": 0.15, "muB": 0.5, "KA": 0.5, "IA": 50.0,
         "KB": 0.2, "IB": 2.0}
REQUIRED = {"parameters", "x0", "confidence_intervals", "identifiable", "objective", "converged", "iterations",
            "wall_time_s"}


@pytest.fixture(scope="module")
def hplc_model():
    from symode.solve.model import build_model

    return build_model(SPECS / "chemostat-hplc.yaml")


@pytest.fixture(scope="module")
def short_data(hplc_model):
    """Model (1) with X, S, A and B observed every 15 min for 4 days, D(t) varying strongly."""
    from symode.solve.simulation import simulate

    times = np.arange(0, 4 * 24 * 4 + 1) * 0.25
    D = smooth_dilution(times, seed=3, amplitude=0.05, min_period=6.0, max_period=48.0)
    traj = simulate(hplc_model, times, inputs={"D": D}, params=TRUTH)
    obs = noisy_observations(hplc_model, traj, seed=5)
    return make_dataset(times, {"D": D}, obs)


def _start(spec_path: Path, factor: float = 1.6):
    spec = load_spec(spec_path)
    rng = np.random.default_rng(0)
    start = {k: v * factor ** rng.choice([-1, 1]) for k, v in TRUTH.items()}
    return spec.with_values(start)


@pytest.mark.slow
def test_recovery_short_informative(hplc_model, short_data):
    spec = _start(SPECS / "chemostat-hplc.yaml")
    model = hplc_model.with_spec(spec)
    res = fit(model, [short_data], progress=False, max_iter=150)
    assert res.converged
    # the exact symmetry of the hidden satellite (Y(0), gA, gB) is found and reported
    assert any(s.moves("gB") and s.moves("x0.Y") for s in res.symmetries)
    ident, iv = res.identifiable, res.intervals
    assert not ident["gA"] and not ident["gB"]
    se = {n: res.fisher.se_transformed[i] for i, n in enumerate(res.fisher.names)}
    n_ident = 0
    for name, true in TRUTH.items():
        lo, hi = iv[name]["0.99"]
        assert (lo is None or lo <= true) and (hi is None or true <= hi), (name, true, iv[name])
        if ident[name]:
            n_ident += 1
            z = abs(np.log(res.parameters[name]) - np.log(true)) / se[name]
            assert z < 4, (name, res.parameters[name], true, se[name])
    assert n_ident >= 5
    # a fit along a symmetry must not drift: the gauge keeps Y(0) at the order of its start
    assert 1e-3 < res.x0[0]["Y"] < 1e3


def test_interrupted_fit_leaves_valid_json(hplc_model, short_data, tmp_path):
    from symode.report.fit import write_outputs

    spec = _start(SPECS / "chemostat-hplc.yaml", factor=3.0)
    model = hplc_model.with_spec(spec)
    seen = []

    def stop(info):
        seen.append(info.objective)
        if len(seen) >= 3:
            raise KeyboardInterrupt

    res = fit(model, [short_data], progress=False, callback=stop)
    assert res.interrupted and not res.converged
    write_outputs(res, tmp_path, report=False)
    data = json.loads((tmp_path / "fit.json").read_text())
    assert REQUIRED <= set(data)
    assert data["converged"] is False
    assert data["objective"] <= seen[0] + 1e-6
    assert set(data["confidence_intervals"]) == set(TRUTH)
    assert load_spec(tmp_path / "fitted.yaml").parameters["gB"].value == pytest.approx(data["parameters"]["gB"])


def test_provisional_result_of_a_fit_with_fixed_parameters(hplc_model, short_data):
    """The checkpoint of a fit with fixed parameters (``symode fit --fix``) describes that fit's unknowns."""
    from symode.fit import provisional_result
    from symode.fit.local import Progress

    fp = FitProblem(hplc_model, [short_data], fixed=["gA", "gB"])
    z = fp.z_from_values()
    info = Progress("single shooting", 3, float(fp.loss(z)), float(fp.loss(z)), 1.0, z)
    res = provisional_result(hplc_model, [short_data], info, fixed=["gA", "gB"])
    assert "gA" not in res.estimated_parameters and "vA" in res.estimated_parameters
    assert res.parameters["gA"] == hplc_model.spec.parameters["gA"].value
    assert res.objective == pytest.approx(fp.loss(z))


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case, needle", [
    ("nan_input", "NaN input"),
    ("unsorted", "unsorted"),
    ("negative", "negative time"),
    ("missing_column", "missing observable column"),
])
def test_bad_data_clear_errors(tmp_path, capsys, case, needle):
    rows = ["time_h,D,X,S", "0,0.25,20,5", "0.25,0.25,20.1,9", "0.5,0.25,20.2,13", "0.75,0.25,20.1,16"]
    if case == "nan_input":
        rows[2] = "0.25,,20.1,9"
    elif case == "unsorted":
        rows[3], rows[2] = rows[2], rows[3]
    elif case == "negative":
        rows[1] = "-0.25,0.25,20,5"
    elif case == "missing_column":
        rows = [r.rsplit(",", 1)[0] for r in rows]
    data = _write(tmp_path / "data.csv", "\n".join(rows) + "\n")
    code = main(["fit", str(SPECS / "chemostat.yaml"), "--data", data, "-o", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "data.csv" in err
    assert not (tmp_path / "out" / "fit.json").exists()


@pytest.mark.slow
def test_cli_fit_writes_outputs(hplc_model, short_data, tmp_path, capsys):
    spec = _start(SPECS / "chemostat-hplc.yaml", factor=1.3)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec.to_yaml())
    data = _write(tmp_path / "data.csv", dataset_to_csv_text(short_data))
    code = main(["fit", str(spec_path), "--data", data, "-o", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    out = tmp_path / "out"
    fitj = json.loads((out / "fit.json").read_text())
    assert REQUIRED <= set(fitj)
    for name in TRUTH:
        assert set(fitj["confidence_intervals"][name]) == {"0.95", "0.99"}
        assert isinstance(fitj["identifiable"][name], bool)
    assert fitj["symmetries"]
    assert (out / "report.md").exists() and (out / "fit_observables.png").exists()
    fitted = load_spec(out / "fitted.yaml")
    from symode.solve.model import build_model
    from symode.solve.simulation import simulate

    traj = simulate(build_model(fitted), data=short_data)
    assert np.all(np.isfinite(traj.x))


def test_cli_fit_t_end_fits_the_window_only(hplc_model, short_data, tmp_path, capsys):
    data = _write(tmp_path / "data.csv", dataset_to_csv_text(short_data))
    t_end = float(short_data.times[len(short_data.times) // 3])
    out = tmp_path / "out"
    code = main(["fit", str(SPECS / "chemostat-hplc.yaml"), "--data", data, "--t-end", str(t_end), "-o", str(out),
                 "--quiet", "--no-report", "--max-time", "120"])
    assert code == 0
    window = FitProblem(hplc_model, [short_data.until(t_end)]).n_obs
    assert json.loads((out / "fit.json").read_text())["n_observations"] == window
    assert window < FitProblem(hplc_model, [short_data]).n_obs
    capsys.readouterr()
    code = main(["fit", str(SPECS / "chemostat-hplc.yaml"), "--data", data, "--t-end", "-1", "-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "up to time -1" in err[0], err


@pytest.mark.slow
def test_multistart_parallel(hplc_model, short_data):
    spec = _start(SPECS / "chemostat-hplc.yaml")
    res = fit(hplc_model.with_spec(spec), [short_data], progress=False, multistart=2, workers=2, max_iter=80)
    assert len(res.multistart) == 3
    assert res.objective <= min(s["objective"] for s in res.multistart) + 1e-6


def test_overflowing_log_parameter_is_a_failed_point(hplc_model, short_data) -> None:
    """A trial step far out on an unbounded log-scale unknown (exp overflows) is a failed point with the
    failure residuals, not an OverflowError that crashes the fit (seen in a discover bench run)."""
    from symode.errors import SolverError

    fp = FitProblem(hplc_model, [short_data])
    z = fp.z_from_values()
    k = next(i for i, s in enumerate(fp.scales) if s == "log")
    bad = z.copy()
    bad[k] = 1e4
    with pytest.raises(SolverError, match=fp.names[k]):
        fp.natural(bad)
    r = fp.residuals(bad)
    assert np.all(r[: fp.n_obs] == FAIL_RESIDUAL)
    assert np.isfinite(fp.loss(z)) and np.all(np.isfinite(fp.natural(z)))
    np.testing.assert_allclose(fp.dtheta_dz(z)[k], np.exp(z[k]))


def test_multistart_reports_a_failed_start(hplc_model, short_data, monkeypatch) -> None:
    """A start that raises is a row with its error and an infinite objective, not a failed fit; the rows
    keep the start order, and every start begins inside the box."""
    import symode.fit.multistart as ms

    fp = FitProblem(hplc_model, [short_data])
    seen = []

    def fake(job):
        seen.append(job["z"])
        if len(seen) == 2:
            raise RuntimeError("solver exploded")
        return {"objective": float(len(seen)), "converged": True, "message": "ok", "z": list(job["z"]),
                "iterations": 1, "time_s": 0.0}

    monkeypatch.setattr(ms, "start_worker", fake)
    rows = ms.run_multistart(fp, [], 3, seed=0, workers=1, method="lm", shooting="single", segments=4,
                             max_iter=1, max_time=1.0, progress=False)
    assert [r["start"] for r in rows] == ["lhs-0", "lhs-1", "lhs-2"]
    assert rows[1]["objective"] == np.inf and rows[1]["error"] == "solver exploded" and not rows[1]["converged"]
    assert rows[0]["objective"] == 1.0 and rows[2]["objective"] == 3.0
    assert all(np.all((z >= fp.lb) & (z <= fp.ub)) for z in seen)
    # objectives 1 and 3: within chi2(1, 0.99)/2 = 3.3 of each other, so both span the spread; the failed
    # start does not count
    spread = ms.start_spread(fp, rows)
    both = np.array([fp.natural(np.asarray(rows[k]["z"])) for k in (0, 2)])
    for i, name in enumerate(fp.names):
        assert spread[name] == [both[:, i].min(), both[:, i].max()]


def test_max_time_bounds_the_fit_and_reports_what_was_cut_short(hplc_model, short_data, tmp_path) -> None:
    """A fit whose first iteration outlasts max_time (a callback that sleeps: independent of the machine's
    speed) stops there: the local fit is cut short, the analysis finds no time left, and fit.json /
    report.md say so. The wall bound asserted is a generous safety net, not a speed measurement."""
    import time

    from symode.fit import find_symmetries
    from symode.report.fit import write_outputs

    spec = _start(SPECS / "chemostat-hplc.yaml", factor=3.0)
    model = hplc_model.with_spec(spec)
    find_symmetries(model)           # the symbolic detection, once per model structure (remembered)
    seen = []

    def slow(info):          # the first iteration lasts past the whole time limit
        seen.append(info.iteration)
        time.sleep(max(t0 + 1.2 - time.perf_counter(), 0.0))

    t0 = time.perf_counter()
    res = fit(model, [short_data], progress=False, callback=slow, max_time=1.0)
    wall = time.perf_counter() - t0
    assert wall < 1.0 + 15.0
    assert len(seen) == 1               # the loop stopped at the deadline, not at max_iter or convergence
    assert not res.converged and not res.interrupted
    phases = [c["phase"] for c in res.cut_short]
    assert phases == ["local fit", "fisher"]
    assert res.fisher is None and not any(res.identifiable.values())
    assert all("time limit" in r for r in res.reasons().values())
    write_outputs(res, tmp_path, report=True)
    data = json.loads((tmp_path / "fit.json").read_text())
    assert REQUIRED <= set(data) and [c["phase"] for c in data["cut_short"]] == phases
    assert data["objective"] == pytest.approx(res.objective) and np.isfinite(res.objective)
    assert "cut short by the time limit" in (tmp_path / "report.md").read_text()


def test_profile_checks_over_budget_are_abandoned_and_leave_the_fisher_flags(hplc_model, short_data) -> None:
    """With no time left for the analysis's profile checks every planned check is abandoned, listed in
    cut_short, and changes neither flags nor intervals (they stay the Fisher/Wald ones)."""
    from symode.fit.checks import plan_checks, run_checks
    from symode.timing import Budget

    res = fit(hplc_model, [short_data], progress=False, analysis="fisher", max_iter=60)
    assert res.fisher is not None and res.profiles == [] and res.cut_short == []
    flags, intervals = dict(res.identifiable), res.intervals
    planned = plan_checks(res.problem, res, ["muB"])
    assert [c.name for c in planned if c.kind == "profile"] == ["muB"]
    run_checks(res.problem, res.z, res.objective, res.symmetries, res, which=["muB"], budget=Budget(0.0),
               progress=False)
    assert sorted(c["name"] for c in res.cut_short) == sorted(c.name for c in planned)
    assert res.identifiable == flags
    assert res.intervals == intervals


def test_analysis_none_skips_the_uncertainty_analysis(hplc_model, short_data) -> None:
    res = fit(hplc_model, [short_data], progress=False, analysis="none", max_iter=60)
    assert res.fisher is None and res.profiles == [] and not any(res.identifiable.values())
    assert all("analysis 'none'" in r for r in res.reasons().values())
    assert res.timings["seconds"]["local fit"] > 0 and "fisher" not in res.timings["seconds"]


def test_profile_checks_in_worker_processes_match_the_serial_ones(hplc_model, short_data) -> None:
    """Each side of each check as a task in a worker process (the problem rebuilt there), joined again: the
    same profiles, flags and intervals as walking them here."""
    import copy

    from symode.fit.checks import plan_checks, run_checks
    from symode.timing import Budget

    res = fit(hplc_model, [short_data], progress=False, analysis="fisher", max_iter=60)
    assert plan_checks(res.problem, res, False)
    out = []
    for workers in (1, 2):
        r = copy.copy(res)
        r.fisher, r.profiles, r.cut_short = copy.deepcopy(res.fisher), [], []
        run_checks(res.problem, res.z, res.objective, res.symmetries, r, which=False, budget=Budget(600.0),
                   progress=False, workers=workers)
        assert r.cut_short == []
        out.append(r)
    serial, parallel = out
    assert [p.name for p in serial.profiles] == [p.name for p in parallel.profiles]
    for a, b in zip(serial.profiles, parallel.profiles, strict=True):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-9)
        np.testing.assert_allclose(a.q, b.q, rtol=1e-6, atol=1e-6)
        assert a.stop == b.stop
    assert serial.identifiable == parallel.identifiable
