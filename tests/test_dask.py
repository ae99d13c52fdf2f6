"""The Dask backend on a LocalCluster these tests start themselves (2 worker processes): the same results
as the local pool, in job order; a worker killed mid-run loses nothing; Ctrl-C cancels the tasks; the
CLI's scheduler reaches every loop; loops nested in a task stay local.

Skipped when dask[distributed] is not installed, except under CI (``CI=true``), where it must be."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from symode.codegen.build import model_key
from symode.parallel import (
    SCHEDULER_ENV,
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    TaskFailure,
    current_scheduler,
    get_executor,
    in_task,
    process_memo,
    run_tasks,
    use_scheduler,
)
from symode.solve.model import build_model
from symode.solve.simulation import simulate
from symode.solve.synth import make_dataset, noisy_observations, smooth_dilution

from .conftest import SPECS, require
from .parallel_jobs import signalled_first, slow_square, staggered_jobs

try:
    import distributed
except ImportError:  # pragma: no cover - depends on the environment
    distributed = None

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _dask_installed():
    require(distributed is not None, "dask[distributed] is not installed (pip install 'symode[dask]')")


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded worker processes."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc:
        yield lc


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as c:
        yield c


@pytest.fixture
def address(cluster, client):
    """The scheduler's address, both workers up (a previous test may have killed one; the timeout is a safety
    net for a busy machine, where a restarted worker process can take minutes)."""
    client.wait_for_workers(2, timeout=600)
    return cluster.scheduler_address


# ----------------------------------------------------------------------------------------------------
# Job functions (module level: pickled by reference, imported by the workers)
# ----------------------------------------------------------------------------------------------------


def die_once(job: dict) -> dict:
    """Kills its own worker process the first time it runs (a marker file records that it did)."""
    marker = Path(job["marker"])
    if job["x"] == job["victim"]:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return {"x": job["x"], "y": job["x"] ** 2}


def nested_choice(_job: object) -> dict:
    ex = get_executor()
    return {"in_task": in_task(), "scheduler": current_scheduler(), "executor": type(ex).__name__}


def fitlike_start(job: dict) -> dict:
    """A small least-squares fit from one start, as a multistart worker does it: the model built from the
    spec on the worker (once per process), the data and the start shipped with the job."""
    from scipy.optimize import least_squares

    spec, data, names = job["spec"], job["data"], job["names"]
    model = process_memo(("model", model_key(spec)), lambda: build_model(spec)).with_spec(spec)
    observed = data.columns["X"]

    def residuals(z: np.ndarray) -> np.ndarray:
        traj = simulate(model, data.times, data=data, params=dict(zip(names, np.exp(z), strict=True)))
        return (traj["X"] - observed) / (0.02 * np.abs(observed) + 0.01)

    time.sleep(job.get("sleep", 0.0))      # long enough for a worker to be killed while it runs
    res = least_squares(residuals, np.log(job["start"]), method="trf", max_nfev=job["max_nfev"])
    return {"objective": float(0.5 * res.fun @ res.fun), "z": res.x.tolist(), "nfev": int(res.nfev)}


# ----------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------


def _jobs(n: int, **extra: object) -> list[dict]:
    return staggered_jobs(n, 0.1, **extra)


def symode_tasks(stream: list[dict]) -> list[str]:
    """Keys of the symode tasks a ``get_task_stream`` recorded."""
    return sorted({str(t["key"]) for t in stream if str(t["key"]).startswith("symode-")})


def kill_a_busy_worker(client, prefix: str = "symode-", timeout: float = 300.0) -> tuple[threading.Thread, list]:
    """A thread that SIGKILLs the first worker seen running a ``prefix`` task; the killed pid is appended
    to the returned list."""
    killed: list[int] = []

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker, keys in client.processing().items():
                if any(str(k).startswith(prefix) for k in keys):
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    time.sleep(0.3)      # the task is under way
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, killed


@pytest.fixture(scope="module")
def small_fit():
    """The chemostat spec with 3 free parameters, 2 days of X observed every 30 min."""
    model = build_model(SPECS / "chemostat.yaml")
    spec = model.spec.copy()
    free = ["vA", "muA", "IA"]
    for name, par in spec.parameters.items():
        par.estimate = par.estimate and name in free
    for state in spec.states.values():
        state.estimate = False
    model = build_model(spec)
    times = np.arange(0, 2 * 24 * 2 + 1) * 0.5
    D = smooth_dilution(times, seed=3, amplitude=0.05, min_period=6.0, max_period=48.0)
    traj = simulate(model, times, inputs={"D": D}, params={"vA": 0.05, "muA": 0.3, "IA": 20.0})
    data = make_dataset(times, {"D": D}, noisy_observations(model, traj, seed=5))
    return model, spec, data, free


# ----------------------------------------------------------------------------------------------------
# run_tasks on the cluster
# ----------------------------------------------------------------------------------------------------


def test_results_in_job_order_on_the_cluster(address, client):
    jobs = _jobs(6, fail=4)
    seen: list[int] = []
    with distributed.get_task_stream(client) as ts, DaskExecutor(address) as ex:
        assert ex.workers == 2
        out = run_tasks(slow_square, jobs, executor=ex, on_result=lambda k, _r: seen.append(k))
    local = run_tasks(slow_square, jobs, executor=SerialExecutor())
    assert [r if isinstance(r, TaskFailure) else r["y"] for r in out][:4] == [0, 1, 4, 9]
    assert isinstance(out[4], TaskFailure) and out[4].type == "ValueError" and "job 4 fails" in out[4].error
    assert [r["y"] for r in out if not isinstance(r, TaskFailure)] == [
        r["y"] for r in local if not isinstance(r, TaskFailure)]
    assert sorted(seen) == list(range(6))
    assert os.getpid() not in {r["pid"] for r in out if not isinstance(r, TaskFailure)}
    keys = symode_tasks(ts.data)                                       # the tasks ran on the scheduler
    assert len(keys) == 6 and all(k.startswith("symode-slow_square-") for k in keys)


def test_results_in_job_order_whatever_the_completion_order(address, tmp_path):
    """Job 0 waits for job 1, so job 1 completes first -- when the scheduler gives them to different workers,
    which it does not always do on a busy machine: up to three tries to see the reversed completion."""
    reversed_seen = False
    for attempt in range(3):
        jobs = [dict(k=k, signal=1, flag=str(tmp_path / f"flag{attempt}")) for k in range(4)]
        seen: list[int] = []
        with DaskExecutor(address) as ex:
            out = run_tasks(signalled_first, jobs, executor=ex, on_result=lambda k, _r, seen=seen: seen.append(k))
        assert out == [0, 1, 2, 3]
        assert sorted(seen) == [0, 1, 2, 3]                              # on_result as each arrived
        if seen.index(1) < seen.index(0):
            reversed_seen = True
            break
    assert reversed_seen, "job 1 never completed before job 0: the completion order was not exercised"


def test_fitlike_starts_same_as_local_pool(address, small_fit):
    """Four starts of a least-squares fit give the same optima on the cluster as on the process pool."""
    _model, spec, data, free = small_fit
    rng = np.random.default_rng(1)
    starts = [dict(zip(free, np.exp(rng.uniform(np.log([0.001, 0.01, 1.0]), np.log([1.0, 2.0, 1000.0]))),
                       strict=True)) for _ in range(4)]
    jobs = [dict(spec=spec, data=data, names=free, start=[s[n] for n in free], max_nfev=30) for s in starts]
    with ProcessExecutor(2) as ex:
        local = run_tasks(fitlike_start, jobs, executor=ex)
    with DaskExecutor(address) as ex:
        remote = run_tasks(fitlike_start, jobs, executor=ex)
    assert not any(isinstance(r, TaskFailure) for r in local + remote), local + remote
    assert [r["nfev"] for r in remote] == [r["nfev"] for r in local]
    np.testing.assert_allclose([r["objective"] for r in remote], [r["objective"] for r in local], rtol=1e-12)
    np.testing.assert_allclose([r["z"] for r in remote], [r["z"] for r in local], rtol=1e-12)


def test_task_that_kills_its_worker_is_retried(address, tmp_path):
    marker = tmp_path / "killed"
    jobs = [dict(x=k, victim=2, marker=str(marker)) for k in range(5)]
    with DaskExecutor(address) as ex:
        out = run_tasks(die_once, jobs, executor=ex)
    assert marker.exists()                     # the worker did die
    assert out == [{"x": k, "y": k * k} for k in range(5)]


def test_worker_killed_mid_run_loses_nothing(address, client, small_fit):
    _model, spec, data, free = small_fit
    jobs = [dict(spec=spec, data=data, names=free, start=[0.1 * (k + 1), 0.2, 10.0 * (k + 1)], max_nfev=15,
                 sleep=1.0) for k in range(4)]
    reference = run_tasks(fitlike_start, jobs, executor=SerialExecutor())
    arrived: list[int] = []
    thread, killed = kill_a_busy_worker(client)
    with DaskExecutor(address) as ex:
        out = run_tasks(fitlike_start, jobs, executor=ex, on_result=lambda k, _r: arrived.append(k))
    thread.join(timeout=60)
    assert killed, "no worker was killed"
    assert sorted(arrived) == [0, 1, 2, 3]
    assert not any(isinstance(r, TaskFailure) for r in out), out
    np.testing.assert_allclose([r["objective"] for r in out], [r["objective"] for r in reference], rtol=1e-12)


def test_interrupt_cancels_the_tasks(address, client):
    jobs = [dict(x=k, sleep=0.0 if k == 0 else 30.0) for k in range(6)]

    def stop(_k: int, _r: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), DaskExecutor(address) as ex:
        run_tasks(slow_square, jobs, executor=ex, on_result=stop)
    deadline = time.monotonic() + 60
    left = ["?"]
    while time.monotonic() < deadline:
        left = [k for keys in client.processing().values() for k in keys if str(k).startswith("symode-")]
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"tasks still on the cluster after Ctrl-C: {left}"


# ----------------------------------------------------------------------------------------------------
# Choosing the cluster
# ----------------------------------------------------------------------------------------------------


def test_cli_scheduler_reaches_every_loop(address, monkeypatch):
    """``--scheduler`` (or $SYMODE_SCHEDULER) is the default of every get_executor() in the command."""
    from symode.cli.common import run_command

    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    seen: dict = {}

    def command(_args: argparse.Namespace) -> int:
        with get_executor(1) as a, get_executor() as b:
            seen.update(scheduler=current_scheduler(), a=a, b=b,
                        out=run_tasks(nested_choice, [0, 1], executor=a))
        return 0

    assert run_command(argparse.Namespace(func=command, scheduler=address)) == 0
    assert seen["scheduler"] == address
    assert isinstance(seen["a"], DaskExecutor) and seen["a"].connection is seen["b"].connection  # one connection
    assert seen["a"].connection.client is None                        # closed with the command
    # a loop nested in a task runs in that task, not on the cluster again
    assert seen["out"] == [{"in_task": True, "scheduler": None, "executor": "SerialExecutor"}] * 2
    monkeypatch.setenv(SCHEDULER_ENV, address)
    assert run_command(argparse.Namespace(func=command, scheduler=None)) == 0
    assert isinstance(seen["a"], DaskExecutor) and seen["scheduler"] == address


def test_local_cluster_for_a_quick_try():
    with use_scheduler("local:1"):
        ex = get_executor()
        assert isinstance(ex, DaskExecutor) and ex.workers == 1
        out = run_tasks(slow_square, _jobs(2), executor=ex)
        cluster = ex.connection.cluster
        assert cluster is not None
    assert [r["y"] for r in out] == [0, 1]
    assert ex.connection.client is None and cluster.status.name == "closed"


def test_unreachable_scheduler_is_one_line():
    from symode.errors import SymodeError
    from symode.parallel import DaskConnection

    with pytest.raises(SymodeError, match=r"scheduler tcp://127\.0\.0\.1:9: cannot connect") as err:
        DaskConnection("tcp://127.0.0.1:9", timeout=2)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------------
# The loops of symode on the cluster
# ----------------------------------------------------------------------------------------------------

def _fit(small_fit, scheduler=None):
    from symode.fit import fit

    model, _spec, data, _free = small_fit
    with use_scheduler(scheduler):
        return fit(model, [data], multistart=4, max_iter=30, progress=False, workers=2, seed=1)


def test_multistart_fit_same_on_cluster(address, client, small_fit):
    local = _fit(small_fit)
    with distributed.get_task_stream(client) as ts:
        remote = _fit(small_fit, address)
    assert len([k for k in symode_tasks(ts.data) if k.startswith("symode-start_worker-")]) == 4   # the 4 starts
    assert remote.objective == pytest.approx(local.objective, rel=1e-12)
    assert [s["start"] for s in remote.multistart] == [s["start"] for s in local.multistart]
    np.testing.assert_allclose([s["objective"] for s in remote.multistart],
                               [s["objective"] for s in local.multistart], rtol=1e-12)
    assert remote.parameters == pytest.approx(local.parameters, rel=1e-10)


def test_multistart_fit_survives_a_killed_worker(address, client, small_fit):
    local = _fit(small_fit)
    thread, killed = kill_a_busy_worker(client)
    remote = _fit(small_fit, address)
    thread.join(timeout=60)
    assert killed, "no worker was killed"
    assert all(np.isfinite(s["objective"]) for s in remote.multistart)
    np.testing.assert_allclose([s["objective"] for s in remote.multistart],
                               [s["objective"] for s in local.multistart], rtol=1e-12)


DISCOVERY_TRUTH = {"prod:X->M1": {"v": 0.002}, "inhib:M1-|X": {"kappa": 0.5},
                   "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "prod:Y1->M2": {"u": 0.1}}


def test_small_discovery_same_on_cluster(address, client, tmp_path):
    from symode.discover import discover, synthetic_case

    spec, data, _truth = synthetic_case(1, 2, DISCOVERY_TRUTH, days=5, seed=3, metabolite_every=4)
    local = discover(spec, data, outdir=tmp_path / "local", progress=False, workers=2, final_analysis=False)
    with distributed.get_task_stream(client) as ts, use_scheduler(address):
        remote = discover(spec, data, outdir=tmp_path / "dask", progress=False, workers=2, final_analysis=False)
    assert symode_tasks(ts.data)
    assert sorted(remote.kept_edges) == sorted(local.kept_edges)
    assert [sorted(c.edges) for c in remote.path] == [sorted(c.edges) for c in local.path]
    assert remote.selected.objective == pytest.approx(local.selected.objective, rel=1e-9)


def test_profiles_same_on_cluster(address, client, small_fit):
    """Profile likelihoods are tasks on the cluster (one per side of each parameter), with the local pool's results."""
    from symode.fit import fit

    model, _spec, data, _free = small_fit
    only = dict(analysis="fisher")    # the requested profiles only: the time-shared checks depend on the load
    local = fit(model, [data], max_iter=30, progress=False, workers=2, profile=["vA", "muA"], **only)
    with distributed.get_task_stream(client) as ts, use_scheduler(address):
        remote = fit(model, [data], max_iter=30, progress=False, workers=2, profile=["vA", "muA"], **only)
    assert [k for k in symode_tasks(ts.data) if k.startswith("symode-side_worker-")]
    assert [p.name for p in remote.profiles] == [p.name for p in local.profiles] == ["vA", "muA"]
    for a, b in zip(remote.profiles, local.profiles, strict=True):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-10)
        np.testing.assert_allclose(a.q, b.q, rtol=1e-8, atol=1e-10)
        for level in ("0.95", "0.99"):
            assert [v is None for v in a.intervals[level]] == [v is None for v in b.intervals[level]]
            assert [v for v in a.intervals[level] if v is not None] == pytest.approx(
                [v for v in b.intervals[level] if v is not None], rel=1e-8)


def test_petab_fit_same_on_cluster(address, client, tmp_path):
    from symode.petab.fit import fit_petab
    from tests.petab_cases import VENDORED

    problem = VENDORED / "0001" / "_0001.yaml"
    local = fit_petab(problem, n_starts=3, seed=2, workers=2, progress=False)
    with distributed.get_task_stream(client) as ts, use_scheduler(address):
        remote = fit_petab(problem, n_starts=3, seed=2, workers=2, progress=False)
    assert len([k for k in symode_tasks(ts.data) if k.startswith("symode-_fit_start-")]) == 3
    assert [s.start for s in remote.starts] == [s.start for s in local.starts]
    np.testing.assert_allclose([s.llh for s in remote.starts], [s.llh for s in local.starts], rtol=1e-10)
    assert remote.llh == pytest.approx(local.llh, rel=1e-10)


def test_unreachable_scheduler_on_the_command_line(monkeypatch, capsys, tmp_path):
    """A scheduler nobody listens on: one line naming it, exit status 2, no output written."""
    from symode.cli.main import main
    from symode.parallel import cluster as cluster_module
    from tests.petab_cases import VENDORED

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2.0)
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    code = main(["fit", str(VENDORED / "0001" / "_0001.yaml"), "-o", str(tmp_path / "out"), "--starts", "2",
                 "--quiet", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "scheduler tcp://127.0.0.1:9: cannot connect" in err[0], err
    assert not (tmp_path / "out" / "fit.json").exists()


def test_design_batches_same_on_cluster(address, client, chemostat_model):
    from symode.cli.demo import ORIGINAL_TRUE
    from symode.design import Constraints, DesignProblem
    from symode.design.evaluator import Evaluator
    from symode.spec import load_spec

    from .test_design import _design_batches, assert_same_design_batches

    pb = DesignProblem(load_spec(SPECS / "chemostat.yaml"), params=ORIGINAL_TRUE, model=chemostat_model,
                       candidates=["A", "B"], constraints=Constraints(floor_fraction=0.1))
    serial = _design_batches(pb, None)
    with distributed.get_task_stream(client) as ts, use_scheduler(address), Evaluator(pb) as ev:
        remote = _design_batches(pb, ev)
        assert isinstance(ev.executor, DaskExecutor)
    assert [k for k in symode_tasks(ts.data) if k.startswith("symode-evaluate_worker-")]
    assert_same_design_batches(remote, serial)
