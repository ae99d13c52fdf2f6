"""The executor of every parallel loop (local backends): results in job order, failures in their slot,
on_result as jobs finish, Ctrl-C stops the workers, and the choice of backend (scheduler address,
process-wide default, $SYMODE_SCHEDULER, loops nested in a task)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from symode.cli.main import main
from symode.errors import SymodeError
from symode.parallel import (
    SCHEDULER_ENV,
    ProcessExecutor,
    SerialExecutor,
    TaskFailure,
    current_scheduler,
    get_executor,
    in_task,
    parse_scheduler,
    process_memo,
    run_tasks,
    use_scheduler,
)

from .conftest import SPECS
from .parallel_jobs import signalled_first, slow_square, staggered_jobs

# ----------------------------------------------------------------------------------------------------
# Job functions (module level: the process pool pickles them by reference)
# ----------------------------------------------------------------------------------------------------


def pid_or_wait(job: dict) -> int:
    """Job 0 returns at once; the others sleep, then leave a marker (they must never get that far)."""
    if job["k"] > 0:
        time.sleep(job["sleep"])
        Path(job["marker"]).with_suffix(f".{job['k']}").write_text("finished")
    return os.getpid()


def nested_choice(_job: object) -> dict:
    """What a loop nested in a task would get."""
    ex = get_executor()
    return {"in_task": in_task(), "scheduler": current_scheduler(), "executor": type(ex).__name__,
            "workers": ex.workers}


def _jobs(n: int, **extra: object) -> list[dict]:
    return staggered_jobs(n, 0.05, **extra)


def _gone(pid: int) -> bool:
    """The process has exited (or is a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


# ----------------------------------------------------------------------------------------------------
# Serial and process executors
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", [SerialExecutor(), ProcessExecutor(2)], ids=["serial", "process"])
def test_results_in_job_order_with_failures_in_their_slot(executor):
    jobs = _jobs(5, fail=2)
    seen: list[int] = []
    with executor:
        out = run_tasks(slow_square, jobs, executor=executor, on_result=lambda k, _r: seen.append(k))
    assert [r["y"] for k, r in enumerate(out) if k != 2] == [0, 1, 9, 16]
    assert isinstance(out[2], TaskFailure) and out[2].type == "ValueError" and "job 2 fails" in out[2].error
    assert "slow_square" in out[2].traceback
    assert sorted(seen) == list(range(5))      # on_result once per job, as each arrives
    pids = {r["pid"] for r in out if not isinstance(r, TaskFailure)}
    if isinstance(executor, ProcessExecutor):
        assert os.getpid() not in pids
    else:
        assert pids == {os.getpid()}


def test_results_in_job_order_whatever_the_completion_order(tmp_path):
    jobs = [dict(k=k, signal=3, flag=str(tmp_path / "flag")) for k in range(4)]
    seen: list[int] = []
    with ProcessExecutor(2) as ex:
        out = run_tasks(signalled_first, jobs, executor=ex, on_result=lambda k, _r: seen.append(k))
    assert out == [0, 1, 2, 3]
    assert seen[-1] == 0 and sorted(seen) == [0, 1, 2, 3]


def test_process_pool_is_reused_until_closed():
    with ProcessExecutor(2) as ex:
        first = {r["pid"] for r in run_tasks(slow_square, _jobs(4), executor=ex)}
        second = {r["pid"] for r in run_tasks(slow_square, _jobs(4), executor=ex)}
    assert first & second


def test_run_tasks_without_executor_uses_workers():
    out = run_tasks(slow_square, _jobs(3), workers=2)
    assert [r["y"] for r in out] == [0, 1, 4]
    assert os.getpid() not in {r["pid"] for r in out}
    assert run_tasks(slow_square, [], workers=2) == []


def test_interrupt_stops_the_worker_processes(tmp_path):
    jobs = [dict(k=k, sleep=60.0, marker=str(tmp_path / "done")) for k in range(4)]
    pids: list[int] = []

    def stop(_k: int, res: int) -> None:
        pids.append(res)
        raise KeyboardInterrupt

    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), ProcessExecutor(2) as ex:
        run_tasks(pid_or_wait, jobs, executor=ex, on_result=stop)
    assert time.perf_counter() - t0 < 50       # did not wait for the 60 s jobs
    deadline = time.monotonic() + 20
    while not _gone(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pids[0]), "the worker process survived Ctrl-C"
    assert not list(tmp_path.glob("done.*"))   # no long job ran to its end


# ----------------------------------------------------------------------------------------------------
# Choosing the backend
# ----------------------------------------------------------------------------------------------------


def test_get_executor_local_choices(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert isinstance(get_executor(1), SerialExecutor)
    with get_executor(3) as ex:
        assert isinstance(ex, ProcessExecutor) and ex.workers == 3
    assert current_scheduler() is None


@pytest.mark.parametrize("text, address", [("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
                                           ("127.0.0.1:8786", "tcp://127.0.0.1:8786"),
                                           ("tls://scheduler.lab:8786", "tls://scheduler.lab:8786"),
                                           (" local:4 ", "local:4")])
def test_parse_scheduler_accepts(text, address):
    assert parse_scheduler(text) == address


@pytest.mark.parametrize("text", ["", "localhost", "local:0", "local:x", "http://x:1", "tcp://", "a b:1",
                                  "host:port"])
def test_parse_scheduler_rejects_in_one_line(text):
    with pytest.raises(SymodeError, match=r"scheduler '.*': (expected tcp://HOST:PORT|local:N needs N >= 1)") as err:
        parse_scheduler(text)
    assert "\n" not in str(err.value)


def test_scheduler_precedence(monkeypatch):
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.0.0.1:1")
    assert current_scheduler() == "tcp://10.0.0.1:1"
    with use_scheduler(None):                  # the CLI without --scheduler and without the variable
        assert current_scheduler() is None
        assert isinstance(get_executor(1), SerialExecutor)
    monkeypatch.setenv(SCHEDULER_ENV, "nonsense")
    with pytest.raises(SymodeError, match="nonsense"):
        current_scheduler()


def test_loops_nested_in_a_task_stay_local(monkeypatch):
    """A job that runs a loop of its own never sends it back to the cluster (or fans out to all CPUs)."""
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.0.0.1:1")  # inherited by the pool's processes
    with ProcessExecutor(2) as ex:
        out = run_tasks(nested_choice, [0, 1], executor=ex)
    with use_scheduler(None):
        out += run_tasks(nested_choice, [0], workers=1)
    for res in out:
        assert res == {"in_task": True, "scheduler": None, "executor": "SerialExecutor", "workers": 1}
    assert not in_task()


def test_process_memo_builds_once_per_key():
    calls: list[str] = []

    def make(name: str):
        return lambda: calls.append(name) or name.upper()

    assert process_memo(("test", "a"), make("a")) == "A"
    assert process_memo(("test", "a"), make("a")) == "A"
    assert process_memo(("test", "b"), make("b"), maxsize=1) == "B"   # evicts "a"
    assert process_memo(("test", "a"), make("a")) == "A"
    assert calls == ["a", "b", "a"]


# ----------------------------------------------------------------------------------------------------
# Without Dask
# ----------------------------------------------------------------------------------------------------


def test_scheduler_without_dask_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)     # as if dask[distributed] were not installed
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with pytest.raises(SymodeError, match=r"pip install 'symode\[dask\]'"):
        get_executor(scheduler="tcp://127.0.0.1:8786")
    code = main(["fit", str(SPECS / "chemostat.yaml"), "--data", str(tmp_path / "none.csv"), "-o", str(tmp_path),
                 "--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "symode[dask]" in err[0], err
    monkeypatch.setenv(SCHEDULER_ENV, "local:2")
    code = main(["discover", str(SPECS / "chemostat.yaml"), "--data", str(tmp_path / "none.csv"), "-o",
                 str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "symode[dask]" in err[0], err


def test_petab_fit_scheduler_without_dask_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    from tests.petab_cases import VENDORED

    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    code = main(["fit", str(VENDORED / "0001" / "_0001.yaml"), "-o", str(tmp_path), "--starts", "2", "--quiet",
                 "--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "symode[dask]" in err[0], err
    assert not (tmp_path / "fit.json").exists()


def test_bad_scheduler_option_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(SPECS / "chemostat.yaml"), "--data", "x.csv", "-o", str(tmp_path), "--scheduler", "nowhere"])
    assert exc.value.code == 2
    assert "expected tcp://HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "profile", "train", "discover", "design", "petab-fit"])
def test_commands_with_parallel_loops_take_scheduler(command, capsys):
    from tests.petab_cases import VENDORED

    argv = ["fit", str(VENDORED / "0001" / "_0001.yaml")] if command == "petab-fit" else [command]
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    assert "--scheduler ADDRESS" in capsys.readouterr().out
