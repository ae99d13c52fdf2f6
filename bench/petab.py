"""PEtab benchmark: symode vs AMICI on the Benchmark-collection problems, side by side in one run.

Run: python3 bench/petab.py [--root DIR] [--problems NAME,...] [--no-amici] [--no-symode] [--rebuild]
                            [--repeat N] [--rounds N] [--fd] [--json OUT.json]

For every problem listed in DIR/reference-llh.tsv (default ../shared/petab/benchmark) and for each tool:

- build: model import + code generation + compilation (AMICI: ``import_petab_problem``; symode: load the
  PEtab problem and build the compiled model). AMICI builds are slow, so they are cached under
  ``bench/.amici-cache/<problem>/`` with the measured build time (``build.json``); a cached row shows that
  time (marked ``cached``), ``--rebuild`` measures it again;
- simulate: one evaluation of the llh at the nominal parameters, no sensitivities;
- gradient forward / adjoint: one llh gradient with respect to the estimated parameters on their
  parameter scales by forward and by adjoint sensitivities;
- every time is the minimum over at least --repeat calls and at least 0.3 s of calls (at most 300 calls;
  :func:`_best`), the same rule for both tools; with ``--rounds N`` each tool's worker runs N times per
  problem, the tools alternating, and each time is the minimum over the rounds (:func:`merge_round`), so
  that a moment of load on the shared machine moves neither tool's number;
- llh: at the nominal parameters, and its difference from the reference value (AMICI's own test suite);
  ``fwd/adj`` is max |g_fwd - g_adj| / max |g_fwd|; with ``--fd`` each gradient is also compared with
  central finite differences (step 1e-5 on the parameter scale, rtol 1e-12): max |g - g_fd| / max |g_fd|,
  the smaller of the distances to either tool's finite differences (:func:`cross_check_fd`);
  the llh is also computed at rtol 1e-12, atol 1e-14
  (``llh tight``) to show how much of a difference from the reference is the solver tolerance.

A second table compares each tool's faster gradient method: symode's against AMICI's wall clock (the ratio
that counts for a user of either tool) and against AMICI's solver CPU time alone (what AMICI's C++ core
costs without its Python layer). An adjoint gradient that differs from the same tool's forward gradient by
more than 1e-3 (``fwd/adj``; AMICI's adjoints on problems with discontinuities) is not counted there, and
the run lists what it left out. With ``--fd`` both tools' gradients are also timed at tighter (rtol = atol =
1e-9 and 1e-10; rtol 1e-8, atol 1e-10: symode's default tolerances) and looser tolerances (rtol = atol =
1e-6 and 1e-7; rtol 1e-6 and 1e-7 with atol 1e-10), and a third table compares them at matched accuracy:
each tool's fastest method and tolerances whose gradient is within 1e-3 of the finite differences (the bar
symode's gradients are tested against). A fast but inaccurate gradient does not count
there. symode's discrete gradients are the exact derivatives of the computed llh; at atol 1e-8 the small
states of several problems carry absolute errors that move the llh's derivatives with respect to
observable parameters (scalings, offsets) by more than 1e-3, and atol 1e-10 removes most of that. AMICI's
forward sensitivities have their own error control.

AMICI is timed as pyPESTO evaluates it: the parameter mapping and ExpData objects are created once and
reused, ``simulate_petab`` is timed (wall clock: solver + mapping fill-in + llh aggregation); its solver
CPU time alone (``rdata.cpu_time + cpu_time_b``) is printed too. Solver settings as in AMICI's benchmark
tests: rtol = atol = 1e-8, at most 10^4 steps (Brannmark: steady-state sensitivities by integration).
Each tool runs in its own subprocess per problem (a crash or a hang costs one row, not the run).

The symode columns come from ``symode.petab.objective.PetabObjective`` (load, build, ``evaluate`` with
and without the gradient); while that API is absent they read "symode import not available".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the ``petab`` package: keep its directory off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
CACHE = ROOT / "bench" / ".amici-cache"
# ../shared next to the repository (or next to the directory of a git worktree)
DEFAULT_ROOT = next((d for d in (ROOT.parent / "shared" / "petab" / "benchmark",
                                 ROOT.parent.parent / "shared" / "petab" / "benchmark") if d.is_dir()),
                    ROOT.parent / "shared" / "petab" / "benchmark")
RTOL = ATOL = 1e-8
MAX_STEPS = 10_000
TIGHT_RTOL, TIGHT_ATOL = 1e-12, 1e-14
FD_STEP = 1e-5   # central differences on the parameter scale, at the tight tolerances
#: with --fd, gradients also at these tolerances (rtol, atol), for the accuracy-matched table: tighter
#: (rtol = atol; (1e-8, 1e-10) is symode's default, SolverOptions) and looser (a tool whose gradients are
#: more accurate than the bar at the nominal tolerances may reach it for less)
SWEEP = ((1e-9, 1e-9), (1e-10, 1e-10), (1e-8, 1e-10), (1e-7, 1e-7), (1e-6, 1e-6), (1e-7, 1e-10), (1e-6, 1e-10))


def sweep_suffix(rtol: float, atol: float) -> str:
    """The key suffix of a sweep point's numbers: "@1e-09" (rtol = atol) or "@1e-08/1e-10"."""
    return f"@{rtol:g}" if rtol == atol else f"@{rtol:g}/{atol:g}"


SWEEP_SUFFIXES = tuple(sweep_suffix(r, a) for r, a in SWEEP)
WORKER_TIMEOUT = 3 * 3600


# ----------------------------------------------------------------------------------------------------
# workers (run in a subprocess; print one JSON object on the last line of stdout)
# ----------------------------------------------------------------------------------------------------

#: timing: every measured call is repeated at least --repeat times and until MIN_TIMING_S have been spent on
#: it (at most MAX_CALLS calls); the minimum counts. A millisecond call gets hundreds of tries, a second-long
#: call --repeat: on a shared machine the minimum of few tries of a fast call is mostly noise.
MIN_TIMING_S, MAX_CALLS = 0.3, 300


def _best(fn, repeat: int) -> tuple[float, object]:
    """(the shortest time, the result of that call): its result also carries AMICI's solver CPU times."""
    best, out, spent, calls = math.inf, None, 0.0, 0
    while calls < repeat or (spent < MIN_TIMING_S and calls < MAX_CALLS):
        t0 = time.perf_counter()
        res = fn()
        dt = time.perf_counter() - t0
        if dt < best:
            best, out = dt, res
        spent, calls = spent + dt, calls + 1
    return best, out


def amici_worker(problem_yaml: Path, cache: Path, repeat: int, rebuild: bool, fd: bool = False) -> dict:
    """AMICI: build (or load from the cache), simulate, forward and adjoint gradient at the nominal values."""
    import logging

    import numpy as np
    import petab.v1 as petab
    from amici.importers.petab.v1 import import_petab_problem
    from amici.sim import sundials as amici_sim
    from amici.sim.sundials.petab.v1 import EDATAS, LLH, RDATAS, SLLH, simulate_petab

    try:
        from amici.sim.sundials.petab.v1 import create_parameter_mapping
    except ImportError:
        from amici.sim.sundials.petab.v1._parameter_mapping import create_parameter_mapping

    problem = petab.Problem.from_yaml(problem_yaml)
    name = problem_yaml.parent.name
    # AMICI refuses timepoint-specific observable/noise parameters (unless numeric noise with a trivial noise
    # formula): flatten them as AMICI's own benchmark tests do (the llh and the estimated parameters stay)
    flattened = petab.lint.measurement_table_has_timepoint_specific_mappings(
        problem.measurement_df, allow_scalar_numeric_noise_parameters=not
        petab.lint.observable_table_has_nontrivial_noise_formula(problem.observable_df))
    if flattened:
        petab.flatten_timepoint_specific_output_overrides(problem)
    out: dict = {"tool": "amici", "flattened": bool(flattened), "amici_version": _version("amici"),
                 "n_estimated": int(problem.parameter_df["estimate"].sum()),
                 "n_measurements": len(problem.measurement_df)}
    record = cache / "build.json"
    if rebuild and cache.exists():
        import shutil

        shutil.rmtree(cache)
    cached = record.exists()
    t0 = time.perf_counter()
    model = import_petab_problem(problem, output_dir=cache / "model", model_name=f"bench_{name}",
                                 compile_=None)
    if cached:
        out["build_s"] = json.loads(record.read_text())["build_s"]
        out["build_cached"] = True
        out["load_s"] = time.perf_counter() - t0
    else:
        out["build_s"] = time.perf_counter() - t0
        out["build_cached"] = False
        record.write_text(json.dumps({"build_s": out["build_s"], "amici_version": out["amici_version"]}))

    solver = model.create_solver()
    solver.set_absolute_tolerance(ATOL)
    solver.set_relative_tolerance(RTOL)
    solver.set_max_steps(MAX_STEPS)
    if name == "Brannmark_JBC2010":
        model.set_steady_state_sensitivity_mode(amici_sim.SteadyStateSensitivityMode.integrationOnly)
    conditions = problem.get_simulation_conditions_from_measurement_df()
    mapping = create_parameter_mapping(petab_problem=problem, simulation_conditions=conditions,
                                       scaled_parameters=True, amici_model=model)
    edatas = None

    def run(order, method=None):
        nonlocal edatas
        solver.set_sensitivity_order(order)
        if method is not None:
            solver.set_sensitivity_method(method)
        res = simulate_petab(problem, amici_model=model, solver=solver, edatas=edatas, parameter_mapping=mapping,
                             scaled_gradients=True, log_level=logging.ERROR)
        edatas = res[EDATAS]
        return res

    def cpu_ms(res) -> float:
        return float(sum(r.cpu_time + r.cpu_time_b + r.preeq_cpu_time + r.preeq_cpu_time_b for r in res[RDATAS]))

    run(amici_sim.SensitivityOrder.none)  # creates the ExpData objects once
    out["simulate_s"], res = _best(lambda: run(amici_sim.SensitivityOrder.none), repeat)
    out["simulate_cpu_ms"] = cpu_ms(res)
    out["llh"] = float(res[LLH])
    out["status"] = sorted({int(r.status) for r in res[RDATAS]})
    def time_gradients(suffix: str) -> dict:
        """Forward and adjoint gradient at the solver's tolerances, timed; keys end with ``suffix``."""
        grads = {}
        for label, method in (("forward", amici_sim.SensitivityMethod.forward),
                              ("adjoint", amici_sim.SensitivityMethod.adjoint)):
            try:
                t, res = _best(lambda m=method: run(amici_sim.SensitivityOrder.first, m), repeat)
            except Exception as exc:  # a failing sensitivity method costs one cell, not the row
                out[f"gradient_{label}_error{suffix}"] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            if res[SLLH] is None or any(int(r.status) != 0 for r in res[RDATAS]):
                out[f"gradient_{label}_error{suffix}"] = f"status {sorted({int(r.status) for r in res[RDATAS]})}"
                continue
            out[f"gradient_{label}_s{suffix}"] = t
            out[f"gradient_{label}_cpu_ms{suffix}"] = cpu_ms(res)
            grads[label] = np.array([res[SLLH][k] for k in problem.x_free_ids], dtype=float)
            out[f"gradient_{label}_values{suffix}"] = dict(zip(problem.x_free_ids, map(float, grads[label]),
                                                               strict=True))
        return grads

    grads = time_gradients("")
    if len(grads) == 2:
        g, a = grads["forward"], grads["adjoint"]
        out["fwd_vs_adj"] = float(np.max(np.abs(g - a)) / max(np.max(np.abs(g)), 1e-300))
    if "forward" in grads:
        out["gradient"] = dict(zip(problem.x_free_ids, map(float, grads["forward"]), strict=True))
    if fd:   # the same gradients at tighter tolerances (timed like the others)
        for rtol, atol in SWEEP:
            solver.set_relative_tolerance(rtol)
            solver.set_absolute_tolerance(atol)
            time_gradients(sweep_suffix(rtol, atol))
    # the llh once more at tight tolerances (how far the reference is from the rtol-1e-8 value)
    solver.set_relative_tolerance(TIGHT_RTOL)
    solver.set_absolute_tolerance(TIGHT_ATOL)
    solver.set_max_steps(100 * MAX_STEPS)
    res = run(amici_sim.SensitivityOrder.none)
    if all(int(r.status) == 0 for r in res[RDATAS]):
        out["llh_tight"] = float(res[LLH])
    if fd and grads:
        ids = list(problem.x_free_ids)
        z0 = np.asarray(problem.x_nominal_free_scaled, dtype=float)

        def llh_at(z):
            r = simulate_petab(problem, amici_model=model, solver=solver, edatas=edatas, parameter_mapping=mapping,
                               problem_parameters=dict(zip(ids, z, strict=True)), scaled_parameters=True,
                               log_level=logging.ERROR)
            return float(r[LLH])

        g_fd = np.zeros(len(ids))
        for k in range(len(ids)):
            e = np.zeros(len(ids))
            e[k] = FD_STEP
            g_fd[k] = (llh_at(z0 + e) - llh_at(z0 - e)) / (2 * FD_STEP)
        if np.all(np.isfinite(g_fd)):
            scale = max(np.max(np.abs(g_fd)), 1e-300)
            for label, g in grads.items():
                out[f"{label}_vs_fd"] = float(np.max(np.abs(g - g_fd)) / scale)
            out["gradient_fd"] = dict(zip(ids, map(float, g_fd), strict=True))
        else:
            out["fd_error"] = "a simulation at a perturbed point failed"
    return out


def symode_worker(problem_yaml: Path, repeat: int, fd: bool = False) -> dict:
    """symode: load + build into an empty code cache, simulate, gradients, through
    ``symode.petab.objective.PetabObjective`` (solver settings of AMICI's column: rtol = atol = 1e-8)."""
    import tempfile

    sys.path.insert(0, str(ROOT))
    # a cold build: code generation and compilation are timed, not a hit in symode's content cache
    os.environ["SYMODE_GENERATED_DIR"] = tempfile.mkdtemp(prefix="symode-bench-")
    try:
        from symode.petab.objective import PetabObjective
        from symode.petab.simulate import SolverOptions
    except ImportError:
        return {"tool": "symode", "error": "symode import not available"}
    import numpy as np

    out: dict = {"tool": "symode"}
    t0 = time.perf_counter()
    obj = PetabObjective.from_yaml(problem_yaml, validate=False, options=SolverOptions(rtol=RTOL, atol=ATOL))
    out["build_s"] = time.perf_counter() - t0
    out["build_parts_s"] = {k: float(v) for k, v in obj.timings.items()}
    out["n_estimated"] = len(obj.problem.estimated_ids)
    obj.evaluate()   # first call: loads the compiled library
    out["simulate_s"], ev = _best(lambda: obj.evaluate(), repeat)
    out["llh"] = float(ev.llh)
    def time_gradients(o: PetabObjective, suffix: str) -> dict:
        """Forward and adjoint gradient of ``o``, timed; keys end with ``suffix``."""
        grads = {}
        for label in ("forward", "adjoint"):
            try:
                o.evaluate(gradient=True, method=label)
                t, ev = _best(lambda m=label: o.evaluate(gradient=True, method=m), repeat)
            except Exception as exc:  # a failing method costs one cell, not the row
                out[f"gradient_{label}_error{suffix}"] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            out[f"gradient_{label}_s{suffix}"] = t
            grads[label] = np.asarray(ev.gradient, dtype=float)
            out[f"gradient_{label}_values{suffix}"] = dict(zip(o.problem.estimated_ids, map(float, grads[label]),
                                                               strict=True))
        return grads

    grads = time_gradients(obj, "")
    if len(grads) == 2:
        g, a = grads["forward"], grads["adjoint"]
        out["fwd_vs_adj"] = float(np.max(np.abs(g - a)) / max(np.max(np.abs(g)), 1e-300))
    if "forward" in grads:
        out["gradient"] = dict(zip(obj.problem.estimated_ids, map(float, grads["forward"]), strict=True))
    if fd:   # the same gradients at tighter tolerances (timed like the others)
        for rtol, atol in SWEEP:
            time_gradients(PetabObjective(obj.problem, options=SolverOptions(rtol=rtol, atol=atol)),
                           sweep_suffix(rtol, atol))
    tight = PetabObjective(obj.problem, options=SolverOptions(rtol=TIGHT_RTOL, atol=TIGHT_ATOL))
    try:
        out["llh_tight"] = float(tight.evaluate().llh)
    except Exception as exc:
        out["llh_tight_error"] = f"{type(exc).__name__}: {exc}"[:200]
    if fd and grads:
        pr = obj.problem
        z0 = pr.to_scaled(pr.theta())

        def llh_at(z):
            return float(tight.evaluate(pr.from_scaled(z)).llh)

        try:
            g_fd = np.zeros(len(z0))
            for k in range(len(z0)):
                e = np.zeros(len(z0))
                e[k] = FD_STEP
                g_fd[k] = (llh_at(z0 + e) - llh_at(z0 - e)) / (2 * FD_STEP)
            scale = max(np.max(np.abs(g_fd)), 1e-300)
            for label, g in grads.items():
                out[f"{label}_vs_fd"] = float(np.max(np.abs(g - g_fd)) / scale)
            out["gradient_fd"] = dict(zip(pr.estimated_ids, map(float, g_fd), strict=True))
        except Exception:
            out["fd_error"] = "a simulation at a perturbed point failed"
    return out


# ----------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------

def cross_check_fd(rows: dict) -> None:
    """Each tool's gradients against both tools' finite differences (--fd): ``<method>_vs_fd`` becomes the
    smaller of the two distances (the finite differences of either tool carry that tool's solver error, so
    neither tool is judged by the other's reference alone), ``<method>_vs_fd_own`` keeps its own."""
    fds = [row["gradient_fd"] for row in rows.values() if "gradient_fd" in row]
    if not fds:
        return
    for row in rows.values():
        for method in ("forward", "adjoint"):
            if f"{method}_vs_fd" in row:
                row[f"{method}_vs_fd_own"] = row[f"{method}_vs_fd"]
            for tol in ("", *SWEEP_SUFFIXES):
                key, g = f"{method}_vs_fd{tol}", row.get(f"gradient_{method}_values{tol}")
                dist = [row[key]] if key in row else []
                dist += [max(abs(g[k] - fd[k]) for k in fd) / (max(abs(v) for v in fd.values()) or 1.0)
                         for fd in fds if g is not None and set(fd) == set(g)]
                if dist:
                    row[key] = min(dist)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def run_worker(tool: str, problem_yaml: Path, args: argparse.Namespace, fd: bool | None = None) -> dict:
    """One tool's worker on one problem, in a subprocess; ``fd`` (default ``args.fd``): with the finite
    differences and the tolerance sweep."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, "--problem-yaml", str(problem_yaml),
           "--repeat", str(args.repeat)]
    if args.rebuild:
        cmd.append("--rebuild")
    if args.fd if fd is None else fd:
        cmd.append("--fd")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "error": f"timeout after {args.timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"tool": tool, "error": f"exit {proc.returncode}: {tail[:200]}"}
    out = json.loads(lines[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


#: the timings that --rounds takes the minimum of (with their sweep suffixes)
TIMED = ("simulate_s", "gradient_forward_s", "gradient_adjoint_s")


def merge_round(row: dict, again: dict) -> None:
    """Each timing of ``row`` (:data:`TIMED`, at any tolerance) becomes the smaller of it and the same timing
    in ``again`` (a later round's worker output for the same tool and problem); AMICI's solver CPU time
    follows the call it belongs to."""
    if "error" in again:
        return
    for key, value in again.items():
        if key.split("@")[0] in TIMED and key in row and value < row[key]:
            row[key] = value
            cpu = key.replace("_s", "_cpu_ms", 1)
            if cpu in again:
                row[cpu] = again[cpu]
    row["rounds"] = row.get("rounds", 1) + 1


def load_references(root: Path) -> dict[str, float]:
    refs = {}
    for line in (root / "reference-llh.tsv").read_text().splitlines()[1:]:
        if line.strip():
            name, value = line.split("\t")[:2]
            refs[name] = float(value)
    return refs


def _fmt_s(row: dict, key: str) -> str:
    if key in row:
        v = row[key]
        return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.1f} s"
    err = row.get(key.replace("_s", "_error")) or row.get("error")
    return f"— ({err})" if err else "—"


def _llh_cells(row: dict, ref: float) -> tuple[str, str]:
    if "llh" not in row:
        return "—", "—"
    d = row["llh"] - ref
    ok = abs(d) <= max(1e-3, 1e-5 * abs(ref))
    return f"{row['llh']:.6f}", f"{d:+.1e} {'ok' if ok else 'MISMATCH'}"


def _tolerances(suffix: str) -> str:
    """"rtol 1e-09" or "rtol 1e-08, atol 1e-10" for a sweep suffix ("" = the nominal rtol = atol)."""
    if not suffix:
        return f"rtol {RTOL:g}"
    rtol, _, atol = suffix[1:].partition("/")
    return f"rtol {rtol}, atol {atol}" if atol else f"rtol {rtol}"


def _fastest_gradient(row: dict) -> tuple[float, str] | None:
    """(seconds, method) of a tool's faster gradient method that agrees with its own forward sensitivities
    (an adjoint gradient more than FD_BAR from them, fwd/adj, is not a usable gradient), or None."""
    times = [(row[f"gradient_{m}_s"], m) for m in ("forward", "adjoint") if f"gradient_{m}_s" in row
             and (m == "forward" or row.get("fwd_vs_adj", 0.0) <= FD_BAR)]
    return min(times) if times else None


def _excluded_adjoints(results: dict, names: list[str]) -> list[str]:
    """The "tool on problem (fwd/adj)" whose adjoint was faster but disagreed with its forward gradient."""
    out = []
    for name in names:
        for tool, row in results[name].items():
            if (row.get("fwd_vs_adj", 0.0) > FD_BAR and "gradient_forward_s" in row
                    and row.get("gradient_adjoint_s", math.inf) < row["gradient_forward_s"]):
                out.append(f"{tool} on {name} ({row['fwd_vs_adj']:.1e})")
    return out


#: The accuracy bar of an "accurate" gradient (--fd): max |g - g_fd| / max |g_fd|, as symode's tests require.
FD_BAR = 1e-3


def _fastest_accurate_gradient(row: dict) -> tuple[float, str] | str | None:
    """(seconds, method) of a tool's faster gradient method among those within FD_BAR of central finite
    differences (--fd); "none" if no method is; None without finite differences."""
    checked = [(m, tol) for m in ("forward", "adjoint") for tol in ("", *SWEEP_SUFFIXES)
               if f"{m}_vs_fd{tol}" in row and f"gradient_{m}_s{tol}" in row]
    if not checked:
        return None
    times = [(row[f"gradient_{m}_s{tol}"], f"{m}, {_tolerances(tol)}") for m, tol in checked
             if row[f"{m}_vs_fd{tol}"] <= FD_BAR]
    return min(times) if times else "none"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(DEFAULT_ROOT), help="directory of the problems and reference-llh.tsv")
    ap.add_argument("--problems", help="comma-separated subset of the problems")
    ap.add_argument("--no-amici", action="store_true")
    ap.add_argument("--no-symode", action="store_true")
    ap.add_argument("--rebuild", action="store_true", help="rebuild AMICI models (measure the build time again)")
    ap.add_argument("--fd", action="store_true",
                    help="also check AMICI's gradients against central finite differences at rtol 1e-12")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timing: at least N calls (and 0.3 s) per measured quantity; the minimum is reported (3)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run each tool's worker N times per problem, alternating the tools, and report each "
                         "timing's minimum over the rounds (the finite differences and the sweep: first round) (1)")
    ap.add_argument("--timeout", type=float, default=WORKER_TIMEOUT, help="seconds per tool and problem")
    ap.add_argument("--json", metavar="OUT", help="also write every measured number as JSON")
    ap.add_argument("--worker", choices=("amici", "symode"), help=argparse.SUPPRESS)
    ap.add_argument("--problem-yaml", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        yaml_path = Path(args.problem_yaml)
        if args.worker == "amici":
            res = amici_worker(yaml_path, CACHE / yaml_path.parent.name, args.repeat, args.rebuild, args.fd)
        else:
            res = symode_worker(yaml_path, args.repeat, args.fd)
        print(json.dumps(res))
        return 0

    root = Path(args.root)
    refs = load_references(root)
    names = [n for n in refs if not args.problems or n in args.problems.split(",")]
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    results: dict[str, dict[str, dict]] = {}
    for name in names:
        problem_yaml = root / name / f"{name}.yaml"
        results[name] = {}
        for r in range(args.rounds):   # the tools alternate, so that both see the same machine
            for tool in ("amici", "symode"):
                if getattr(args, f"no_{tool}"):
                    continue
                print(f"{name}: {tool}{f' (round {r + 1}/{args.rounds})' if args.rounds > 1 else ''} ...",
                      file=sys.stderr, flush=True)
                if r == 0:
                    results[name][tool] = run_worker(tool, problem_yaml, args)
                else:   # timings only: the finite differences and the sweep once
                    merge_round(results[name][tool], run_worker(tool, problem_yaml, args, fd=False))
        ga = results[name].get("amici", {}).get("gradient")
        gs = results[name].get("symode", {}).get("gradient")
        if gs and ga and set(ga) == set(gs):
            scale = max(abs(v) for v in ga.values()) or 1.0
            results[name]["symode"]["grad_vs_amici"] = max(abs(ga[k] - gs[k]) for k in ga) / scale
        cross_check_fd(results[name])
    load_end = os.getloadavg()

    rounds = f"; timings: minimum over {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"\nPEtab benchmark, {started}; {machine()}; load average {load_start[0]:.1f} at the start, "
          f"{load_end[0]:.1f} at the end; AMICI {_version('amici')}, petab {_version('petab')}; "
          f"rtol = atol = {RTOL:g}{rounds}\n")
    print("| problem | tool | build | simulate | gradient fwd | gradient adj | solver CPU sim / fwd / adj | "
          "llh | llh - reference | llh tight - reference | fwd/adj | fwd, adj vs FD | gradient vs AMICI |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for tool, row in results[name].items():
            if "error" in row and "llh" not in row:
                print(f"| {name} | {tool} | skipped: {row['error']} | | | | | | | | | | |")
                continue
            build = _fmt_s(row, "build_s") + (" (cached)" if row.get("build_cached") else "")
            cpu = " / ".join(f"{row[k]:.1f}" if k in row else "—" for k in
                             ("simulate_cpu_ms", "gradient_forward_cpu_ms", "gradient_adjoint_cpu_ms"))
            cpu = cpu + " ms" if tool == "amici" else ""
            llh, dllh = _llh_cells(row, refs[name])
            fa = f"{row['fwd_vs_adj']:.1e}" if "fwd_vs_adj" in row else "—"
            va = f"{row['grad_vs_amici']:.1e}" if "grad_vs_amici" in row else ""
            vfd = " / ".join(f"{row[k]:.1e}" if k in row else "—" for k in ("forward_vs_fd", "adjoint_vs_fd"))
            vfd = "FD failed" if "fd_error" in row else vfd
            tight = _llh_cells({"llh": row["llh_tight"]}, refs[name])[1] if "llh_tight" in row else "—"
            flat = " (flattened)" if row.get("flattened") else ""
            print(f"| {name}{flat} | {tool} | {build} | {_fmt_s(row, 'simulate_s')} | "
                  f"{_fmt_s(row, 'gradient_forward_s')} | {_fmt_s(row, 'gradient_adjoint_s')} | {cpu} | {llh} | {dllh} "
                  f"| {tight} | {fa} | {vfd} | {va} |")
    print("\nGradient speed, each tool's fastest method among those that agree with its forward sensitivities to "
          f"{FD_BAR:g} (wall clock per gradient; AMICI also by its solver CPU time alone):\n")
    print("| problem | symode | AMICI | AMICI / symode | AMICI solver CPU | AMICI solver CPU / symode |")
    print("|---|---|---|---|---|---|")
    for name in names:
        best = {tool: _fastest_gradient(row) for tool, row in results[name].items()}
        if best.get("symode") is None or best.get("amici") is None:
            continue
        (ts, ms), (ta, ma) = best["symode"], best["amici"]
        cpu = results[name]["amici"].get(f"gradient_{ma}_cpu_ms")
        cpu_cells = f"{cpu:.1f} ms | {cpu * 1e-3 / ts:.1f}x" if cpu is not None else "— | —"
        print(f"| {name} | {_fmt_s({'t': ts}, 't')} ({ms}) | {_fmt_s({'t': ta}, 't')} ({ma}) | {ta / ts:.1f}x | "
              f"{cpu_cells} |")
    excluded = _excluded_adjoints(results, names)
    if excluded:
        print(f"\nNot counted as the fastest (adjoint faster, but more than {FD_BAR:g} from the same tool's forward "
              f"gradient, fwd/adj): {'; '.join(excluded)}.")
    accurate = {name: {tool: _fastest_accurate_gradient(row) for tool, row in results[name].items()} for name in names}
    accurate = {n: b for n, b in accurate.items() if b.get("symode") is not None and b.get("amici") is not None}
    if accurate:
        print(f"\nGradient speed at matched accuracy: each tool's fastest method and tolerances (rtol = atol = "
              f"{RTOL:g}; {'; '.join(_tolerances(t) for t in SWEEP_SUFFIXES)}) whose gradient is within {FD_BAR:g} of "
              f"central finite differences (max |g - g_fd| / max |g_fd|, the closer of the two tools' differences; "
              f"--fd):\n")
        print("| problem | symode | AMICI | AMICI / symode |")
        print("|---|---|---|---|")
        for name, best in accurate.items():
            cells = []
            for tool in ("symode", "amici"):
                b = best[tool]
                cells.append("no method within the bar" if b == "none" else f"{_fmt_s({'t': b[0]}, 't')} ({b[1]})")
            ratio = (f"{best['amici'][0] / best['symode'][0]:.1f}x" if "none" not in (best["symode"], best["amici"])
                     else "—")
            print(f"| {name} | {cells[0]} | {cells[1]} | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"started": started, "machine": machine(), "load": [load_start,
                                              load_end], "rounds": args.rounds, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
