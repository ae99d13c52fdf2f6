"""Standalone solver code: ``symode codegen`` (GitHub issue 6).

:func:`generate_standalone` writes a self-contained directory that needs neither sympy, CasADi nor
symode — only a C99 compiler (and numpy for the optional Python loader):

``model.c``
    One amalgamated translation unit: the CasADi-generated right-hand side, Jacobians and observables
    (produced by :func:`symode.codegen.generate_sources`, the same code symode itself compiles), symode's
    integrator (Dormand-Prince 5(4) with automatic switching to Rodas4, error control, restarts at
    every sample time) and gradient code (loss, forward sensitivities, interpolating continuous
    adjoint), all ``static``, plus a thin public API whose names start with the prefix
    (default ``model_`` / ``MODEL_``). No global mutable state: every function is re-entrant.
``model.h``
    The documented public API: dimensions, name tables, baked-in default values, options/stats
    structs and functions.
``example.c``, ``Makefile``
    ``make`` builds ``libmodel.so`` and ``model_example`` (reads a CSV of inputs, writes the trajectory
    as CSV) with ``-O2 -Wall -Wextra -Werror``.
``model.py``
    A loader using only ctypes and numpy: builds (``cc``) or loads ``libmodel.so`` beside it and offers
    ``simulate`` and ``loss_and_gradient``.
``README.md``, ``spec.yaml``, ``manifest.json``
    Documentation, the spec the code was generated from (values included), and a manifest.

The directory is written atomically: everything is generated in a temporary sibling directory that is
then renamed into place. An existing target directory is only replaced when it holds a previous
``symode codegen`` output (its ``manifest.json``), never an unrelated directory.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symode.codegen import casadi as codegen
from symode.errors import SymodeError
from symode.spec import Spec, load_spec

STANDALONE_VERSION = "1"
#: Flags of the Makefile (the warnings are errors: the generated code must compile cleanly).
MAKE_CFLAGS = "-O2 -std=c99 -fno-math-errno -Wall -Wextra -Werror"
#: Flags the Python loader uses (no -Werror: a newer compiler's new warning must not break loading).
LOADER_CFLAGS = ["-O2", "-std=c99", "-fno-math-errno", "-Wall"]
MANIFEST = "manifest.json"
_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
#: Declarations/definitions of the integrator's and gradient code's external functions (made static).
_EXTERN_FN = re.compile(r"^(?!static\b|typedef\b|extern\b|return\b)"
                        r"(?=(?:const\s+)?[A-Za-z_]\w*(?:\s+|\s*\*+\s*)symode_\w+\s*\()", re.M)
#: CasADi's helper functions that it defines without CASADI_SYMBOL_EXPORT (e.g. casadi_sq).
_CASADI_EXTERN = re.compile(r"^(?=(?:casadi_real|casadi_int|void|int)\s*\*?\s*casadi_\w+\s*\()", re.M)


# ----------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------

def generate_standalone(spec: Spec | str | Path, out_dir: str | Path, *,
                        params: str | Path | Mapping[str, Any] | None = None, prefix: str = "model",
                        build: bool = False) -> Path:
    """Write the standalone solver directory for ``spec`` to ``out_dir`` and return its path.

    params: a params file (JSON/YAML ``{parameters, constants, x0}``) or such a mapping; its values become
    the baked-in defaults. prefix: C identifier prefix of the public API (``model`` -> ``model_simulate``,
    ``MODEL_NX``). build: also run the build (shared library and example program) in the directory.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    spec = _apply_params(spec, params)
    if not _PREFIX_RE.match(prefix):
        raise SymodeError(f"invalid prefix {prefix!r} (a C identifier of at most 31 characters)", field="prefix")
    if codegen.find_compiler() is None and build:
        raise SymodeError("no C compiler found (set $CC)")
    out = Path(out_dir).absolute()
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    from symode.symbolic.rhs import build_symbolic

    layout = codegen.layout_of(spec)
    sym = build_symbolic(spec)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        scratch = tmp / ".casadi"
        scratch.mkdir()
        codegen.generate_sources(sym, layout, scratch, spec.name)
        casadi_c = (scratch / "model_casadi.c").read_text()
        casadi_h = (scratch / "model_casadi.h").read_text()
        wrapper = (scratch / "model.c").read_text()
        shutil.rmtree(scratch)
        info = _ModelInfo(spec, layout, prefix, discrete="symode_grad_discrete(" in wrapper)
        files = {
            "model.h": _header(info),
            "model.c": _amalgamate(info, casadi_c, casadi_h, wrapper),
            "example.c": _example(info),
            "Makefile": _makefile(info),
            "model.py": _loader(info),
            "README.md": _readme(info),
            "spec.yaml": spec.to_yaml(),
        }
        for name, text in files.items():
            (tmp / name).write_text(text)
        (tmp / MANIFEST).write_text(json.dumps(
            {"generator": "symode codegen", "version": STANDALONE_VERSION, "model": spec.name, "prefix": prefix,
             "states": info.states, "parameters": info.parameters, "inputs": info.inputs,
             "observables": info.observables, "files": sorted([*files, MANIFEST])}, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        if build:
            run_make(tmp)
        _replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def run_make(directory: Path, target: str = "all") -> None:
    """Build the generated directory (``make``, or the equivalent cc lines when make is missing)."""
    directory = Path(directory)
    cc = codegen.find_compiler()
    if cc is None:
        raise SymodeError("no C compiler found (set $CC)")
    if shutil.which("make"):
        cmds = [["make", "-s", f"CC={cc}", target]]
    else:
        flags = MAKE_CFLAGS.split()
        cmds = [[cc, *flags, "-fPIC", "-shared", "-o", "libmodel.so", "model.c", "-lm"],
                [cc, *flags, "-o", "model_example", "example.c", "model.c", "-lm"]]
    for cmd in cmds:
        proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SymodeError(f"building the standalone code failed: {(proc.stderr or proc.stdout).strip()[:2000]}",
                              file=str(directory))


def _apply_params(spec: Spec, params: str | Path | Mapping[str, Any] | None) -> Spec:
    if params is None:
        return spec
    if isinstance(params, (str, Path)):
        from symode.spec.params import apply_params

        return apply_params(spec, params)
    values = dict(params.get("parameters") or {})
    values.update(params.get("constants") or {})
    return spec.with_values({k: float(v) for k, v in values.items()},
                            {k: float(v) for k, v in (params.get("x0") or {}).items()})


def _check_target(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise SymodeError("output exists and is not a directory", file=str(out))
    if any(out.iterdir()) and not _is_ours(out):
        raise SymodeError("output directory exists and was not written by 'symode codegen' (no manifest.json); "
                          "choose a new or empty directory", file=str(out))


def _is_ours(directory: Path) -> bool:
    try:
        return json.loads((directory / MANIFEST).read_text()).get("generator") == "symode codegen"
    except (OSError, ValueError, AttributeError):
        return False


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out``, replacing a previous codegen output in (nearly) one step."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        os.rename(out, old)
        try:
            os.rename(tmp, out)
        except OSError:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


# ----------------------------------------------------------------------------------------------------
# What goes into the files
# ----------------------------------------------------------------------------------------------------

class _ModelInfo:
    def __init__(self, spec: Spec, layout: codegen.Layout, prefix: str, *, discrete: bool = False) -> None:
        self.spec = spec
        self.discrete = discrete
        self.layout = layout
        self.name = spec.name
        self.p = prefix
        self.P = prefix.upper()
        self.states = list(layout.states)
        self.parameters = list(layout.parameters)
        self.inputs = list(layout.inputs)
        self.linear = list(layout.linear_inputs)
        self.observables = list(layout.observables)
        self.nx, self.np, self.nu, self.ny = (len(self.states), len(self.parameters), len(self.inputs),
                                              len(self.observables))
        self.nU = layout.nu_interval
        self.p_default = [float(spec.parameters[n].value) for n in self.parameters]
        self.x0_default = [float(spec.states[n].x0) for n in self.states]
        self.u_default = [None if spec.inputs[n].default is None else float(spec.inputs[n].default)
                          for n in self.inputs]
        self.noise_abs = [float(spec.observables[n].noise.absolute) for n in self.observables]
        self.noise_rel = [float(spec.observables[n].noise.relative) for n in self.observables]
        self.obs_expr = [str(spec.observables[n].expr) for n in self.observables]

    def units(self, kind: str, name: str) -> str:
        obj = getattr(self.spec, kind)[name]
        bits = [getattr(obj, "unit", None) or "", getattr(obj, "description", None) or ""]
        return _comment_safe(" — ".join(b for b in bits if b))


def _comment_safe(text: str) -> str:
    return str(text).replace("*/", "* /").replace("\n", " ")


def _c_double(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return repr(float(v))


def _c_names(names: list[str]) -> str:
    return "{" + ", ".join([*(f'"{n}"' for n in names), "NULL"]) + "}"


def _c_doubles(values: list[float | None]) -> str:
    return "{" + ", ".join([*(_c_double(v) for v in values), "0.0"]) + "}"


def _sub(template: str, info: _ModelInfo, **extra: str) -> str:
    """Fill @KEY@ placeholders (C and Python templates are full of braces, so no str.format)."""
    values = {"p": info.p, "P": info.P, "NAME": _comment_safe(info.name), "NX": str(info.nx), "NP": str(info.np),
              "NU": str(info.nu), "NUI": str(info.nU), "NY": str(info.ny), "VERSION": STANDALONE_VERSION,
              **extra}
    out = template
    for key, value in values.items():
        out = out.replace(f"@{key}@", value)
    leftover = re.findall(r"@[A-Za-z_]+@", out)
    if leftover:  # pragma: no cover - template bug
        raise RuntimeError(f"unfilled placeholders {sorted(set(leftover))}")
    return out


def _name_table(info: _ModelInfo) -> str:
    rows = []

    def block(title: str, names: list[str], kind: str | None, extra: list[str] | None = None) -> None:
        rows.append(f" * {title} ({len(names)}):")
        for i, n in enumerate(names):
            note = info.units(kind, n) if kind else ""
            more = f"  [{extra[i]}]" if extra else ""
            rows.append(f" *   {i:3d}  {n}{more}{'  ' + note if note else ''}")
        if not names:
            rows.append(" *   (none)")

    block("States x", info.states, "states", [f"default x0 {v:g}" for v in info.x0_default])
    block("Parameters p", info.parameters, "parameters", [f"default {v:g}" for v in info.p_default])
    block("Inputs u", info.inputs, "inputs",
          [("linear" if n in info.linear else "piecewise constant")
           + ("" if d is None else f", default {d:g}") for n, d in zip(info.inputs, info.u_default, strict=True)])
    block("Observables y", info.observables, None,
          [f"{_comment_safe(e)}; sigma^2 = {a:g}^2 + ({r:g} d)^2"
           for e, a, r in zip(info.obs_expr, info.noise_abs, info.noise_rel, strict=True)])
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------------
# model.h
# ----------------------------------------------------------------------------------------------------

_HEADER = r"""/*
 * model.h -- standalone solver for the symode model '@NAME@'.
 * Generated by symode codegen (standalone v@VERSION@). Do not edit; regenerate instead.
 *
@TABLE@
 *
 * Conventions
 *   - Arrays are row-major by sample: X[i*@P@_NX + k] = x_k(times[i]); matrices of a single point
 *     (Jacobians) are column-major: J[i + j*rows] = d out_i / d in_j.
 *   - times: nt >= 1 strictly increasing sample times. The integrator restarts at every sample time,
 *     so inputs may jump there.
 *   - u: per sample interval [times[i], times[i+1]) one vector of @P@_NU_INTERVAL values, i = 0..nt-2
 *     ((nt-1)*@P@_NU_INTERVAL values). When every input is piecewise constant this is simply the input
 *     values in @P@_INPUT_NAMES order; @p@_interval_inputs() builds it from values at the sample times
 *     (it also handles linearly interpolated inputs). u may be NULL when @P@_NU_INTERVAL is 0.
 *   - x0 / p may be NULL: the baked-in defaults @P@_DEFAULT_X0 / @P@_DEFAULT_PARAMETERS are used.
 *   - opt may be NULL (defaults of @p@_default_options), stats may be NULL.
 *   - Gradients are with respect to theta = [x0 (@P@_NX), p (@P@_NP)]: grad has @P@_NTHETA values.
 *   - data: nt*@P@_NY observations in @P@_OBSERVABLE_NAMES order, NaN = missing. sigma: the same shape,
 *     or NULL to use the noise model sigma^2 = absolute^2 + (relative*d)^2 (@p@_noise_sigma).
 *     Loss L = 1/2 sum over observed (i,k) of ((y_k(t_i) - d_ik) / sigma_ik)^2; observables at sample i
 *     use the inputs of interval min(i, nt-2).
 *   - Every function returns 0 (@P@_OK) or a negative @P@_ERR_* code (see @p@_strerror).
 *   - Thread safety: no global mutable state; all functions are re-entrant and may be called from
 *     several threads at once (work memory is on the stack or malloc'ed per call and freed).
 */
#ifndef @P@_MODEL_H
#define @P@_MODEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dimensions ---------------------------------------------------------------------------- */
#define @P@_NX @NX@            /* states */
#define @P@_NP @NP@            /* parameters */
#define @P@_NU @NU@            /* inputs */
#define @P@_NU_INTERVAL @NUI@   /* values per sample interval in u */
#define @P@_NY @NY@            /* observables */
#define @P@_NTHETA (@P@_NX + @P@_NP)   /* gradient length: [x0, p] */

/* ---- names and baked-in values (tables have one extra element: NULL / 0.0, never length 0) --- */
extern const char *const @P@_NAME;
extern const char *const @P@_STATE_NAMES[@P@_NX + 1];
extern const char *const @P@_PARAMETER_NAMES[@P@_NP + 1];
extern const char *const @P@_INPUT_NAMES[@P@_NU + 1];
extern const char *const @P@_OBSERVABLE_NAMES[@P@_NY + 1];
extern const int @P@_INPUT_IS_LINEAR[@P@_NU + 1];           /* 1: linearly interpolated input */
extern const double @P@_DEFAULT_X0[@P@_NX + 1];
extern const double @P@_DEFAULT_PARAMETERS[@P@_NP + 1];
extern const double @P@_DEFAULT_INPUTS[@P@_NU + 1];         /* NaN: the input has no default */
extern const double @P@_NOISE_ABSOLUTE[@P@_NY + 1];
extern const double @P@_NOISE_RELATIVE[@P@_NY + 1];

/* ---- status codes and methods -------------------------------------------------------------- */
#define @P@_OK             0
#define @P@_ERR_MAXSTEPS  (-1)  /* step budget exhausted */
#define @P@_ERR_HMIN      (-2)  /* step size underflow */
#define @P@_ERR_NONFINITE (-3)  /* NaN/Inf in the state or right-hand side */
#define @P@_ERR_SINGULAR  (-4)  /* singular iteration matrix */
#define @P@_ERR_RHS       (-5)  /* model evaluation failed */
#define @P@_ERR_ARGS      (-6)  /* invalid arguments */
#define @P@_ERR_NOMEM     (-7)  /* out of memory */

#define @P@_METHOD_AUTO     0   /* Dormand-Prince 5(4), switching to Rodas4 when stiff (default) */
#define @P@_METHOD_EXPLICIT 1   /* Dormand-Prince 5(4) only */
#define @P@_METHOD_STIFF    2   /* Rodas4 (Rosenbrock, L-stable) only */

typedef struct {
    double rtol, atol;   /* error control per component: err_i / (atol + rtol*|x_i|), RMS norm */
    double h0;           /* initial step, <= 0: automatic */
    double hmax;         /* maximal step, <= 0: unlimited */
    long max_steps;      /* step budget for the whole call, <= 0: 10^7 */
    int method;          /* @P@_METHOD_* */
} @p@_options;

typedef struct {
    long n_steps, n_accepted, n_rejected, n_rhs, n_jac, n_lu;
    int method_used;     /* method active at the end: @P@_METHOD_EXPLICIT or @P@_METHOD_STIFF */
    int n_switches;      /* automatic switches between the methods */
    int fail_interval;   /* on failure: interval i = [times[i], times[i+1]] that failed, else -1 */
    double fail_t;       /* time of the failure */
} @p@_stats;

/* Defaults: rtol 1e-8, atol 1e-10 (symode's), automatic h0, no hmax, 10^7 steps, METHOD_AUTO. */
void @p@_default_options(@p@_options *opt);
const char *@p@_strerror(int status);

/* ---- the model at one point (u: one interval vector of @P@_NU_INTERVAL values) --------------- */
int @p@_rhs(double t, const double *x, const double *p, const double *u, double *xdot);   /* f: NX */
int @p@_jac_x(double t, const double *x, const double *p, const double *u, double *J);    /* df/dx: NX x NX */
int @p@_jac_p(double t, const double *x, const double *p, const double *u, double *J);    /* df/dp: NX x NP */
int @p@_obs(double t, const double *x, const double *p, const double *u, double *y);      /* h: NY */
int @p@_obs_jac_x(double t, const double *x, const double *p, const double *u, double *J); /* NY x NX */
int @p@_obs_jac_p(double t, const double *x, const double *p, const double *u, double *J); /* NY x NP */

/* Interval vectors u ((nt-1)*NU_INTERVAL) from input values at the sample times (values: nt*NU, row i =
   inputs at times[i]; NULL: the defaults). Piecewise-constant inputs take the value at the interval's
   start; linear ones also get the slope to the next sample. Fails (ERR_ARGS) on NaN or missing defaults. */
int @p@_interval_inputs(int nt, const double *times, const double *values, double *u);

/* ---- forward simulation ------------------------------------------------------------------------ */
/* States at the sample times: xout has nt*NX values (row 0 = x0). On failure the rows after
   stats->fail_interval are NaN. */
int @p@_simulate(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                 const double *u, double *xout, @p@_stats *stats);

/* Observables along a trajectory X (nt*NX): Y has nt*NY values. */
int @p@_observe(int nt, const double *times, const double *X, const double *p, const double *u, double *Y);

/* ---- loss and gradient -------------------------------------------------------------------------- */
/* sigma (n_rows*NY) from data by the noise model; missing data get sigma 1 (unused). */
int @p@_noise_sigma(int n_rows, const double *data, double *sigma);

/* Loss of one forward solve (no gradient). */
int @p@_loss(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
             const double *u, const double *data, const double *sigma, double *loss, @p@_stats *stats);

/* Loss and gradient dL/d[x0, p] (NTHETA values) by forward sensitivities. Optionally (else NULL) the
   residual Jacobian rjac ((nt*NY) x NTHETA, row-major, zero rows where data are missing) and the
   residuals r (nt*NY) for Gauss-Newton methods. */
int @p@_loss_forward(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                     const double *u, const double *data, const double *sigma, double *loss, double *grad,
                     double *rjac, double *r, @p@_stats *stats);

/* Loss and gradient by the continuous adjoint (Chen et al. 2018, Algorithm 1) with checkpoints at the
   sample times and Hermite interpolation of x on 8 sub-steps per interval ("interpolating adjoint").
   Cost nearly independent of the number of parameters. */
int @p@_loss_adjoint(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                     const double *u, const double *data, const double *sigma, double *loss, double *grad,
                     @p@_stats *stats);

@DISCRETE@
/* States X (nt*NX) and sensitivities S = dx(t_i)/d[x0, p]: nt blocks of NX*NTHETA, column-major per block
   (S[i*NX*NTHETA + k + j*NX] = dx_k(t_i)/dtheta_j). */
int @p@_sensitivities(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                      const double *u, double *X, double *S, @p@_stats *stats);

/* Dimensions as a function (for dynamic loaders): dims = {NX, NP, NU, NU_INTERVAL, NY}. */
void @p@_dims(int *dims);

#ifdef __cplusplus
}
#endif

#endif /* @P@_MODEL_H */
"""


def _header(info: _ModelInfo) -> str:
    return _sub(_HEADER, info, TABLE=_name_table(info), DISCRETE=_sub(_H_DISCRETE, info) if info.discrete else "")


# ----------------------------------------------------------------------------------------------------
# model.c
# ----------------------------------------------------------------------------------------------------

_C_PREAMBLE = r"""/*
 * model.c -- standalone solver for the symode model '@NAME@' (see model.h for the API).
 * Generated by symode codegen (standalone v@VERSION@). Do not edit; regenerate instead.
 *
@TABLE@
 *
 * Layout of this file (one translation unit; everything except the API of model.h is static):
 *   1. symode's integrator and gradient code (symode/codegen/csrc: DP5/Rodas4 integrator, step tape, gradients),
 *   2. the right-hand side, Jacobians and observables generated by CasADi from the symbolic model,
 *   3. symode's model wrapper connecting them (as in symode's own compiled model libraries),
 *   4. the public API (model.h).
 * Build: cc -O2 -std=c99 -Wall -Wextra -Werror -fPIC -shared -o libmodel.so model.c -lm
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================================================ */
/* 1. integrator and gradient code                                                               */
/* ============================================================================================ */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* not every internal entry point is used here */
#endif
"""

_C_CASADI_START = r"""
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* ============================================================================================ */
/* 2. CasADi-generated model functions (made static; they ignore their work-array arguments)      */
/* ============================================================================================ */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#define CASADI_SYMBOL_EXPORT static
"""

_C_WRAPPER_START = r"""
/* ============================================================================================ */
/* 3. symode's model wrapper (symode.codegen): adapters from the CasADi functions to the          */
/*    integrator and gradient code (internal symode_* entry points, static here)                  */
/* ============================================================================================ */
"""

_C_API = r"""
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef NX
#undef NP
#undef NU
#undef NY

/* ============================================================================================ */
/* 4. public API (model.h)                                                                       */
/* ============================================================================================ */
#define API_NX @NX@
#define API_NP @NP@
#define API_NU @NU@
#define API_NUI @NUI@
#define API_NY @NY@

const char *const @P@_NAME = "@CNAME@";
const char *const @P@_STATE_NAMES[API_NX + 1] = @STATE_NAMES@;
const char *const @P@_PARAMETER_NAMES[API_NP + 1] = @PARAM_NAMES@;
const char *const @P@_INPUT_NAMES[API_NU + 1] = @INPUT_NAMES@;
const char *const @P@_OBSERVABLE_NAMES[API_NY + 1] = @OBS_NAMES@;
const int @P@_INPUT_IS_LINEAR[API_NU + 1] = @INPUT_LINEAR@;
const double @P@_DEFAULT_X0[API_NX + 1] = @X0@;
const double @P@_DEFAULT_PARAMETERS[API_NP + 1] = @PDEF@;
const double @P@_DEFAULT_INPUTS[API_NU + 1] = @UDEF@;
const double @P@_NOISE_ABSOLUTE[API_NY + 1] = @NABS@;
const double @P@_NOISE_RELATIVE[API_NY + 1] = @NREL@;

/* stands in for u when the model has no inputs (or a single sample) */
static const double api_no_inputs[API_NUI + 1] = {0.0};

#define API_P(p) ((p) ? (p) : @P@_DEFAULT_PARAMETERS)
#define API_X0(x0) ((x0) ? (x0) : @P@_DEFAULT_X0)
#define API_U(u) ((u) ? (u) : api_no_inputs)
#define API_U_MISSING(nt, u) (API_NUI > 0 && (nt) > 1 && !(u))

void @p@_default_options(@p@_options *opt)
{
    if (!opt) return;
    opt->rtol = 1e-8;
    opt->atol = 1e-10;
    opt->h0 = 0.0;
    opt->hmax = 0.0;
    opt->max_steps = 10000000L;
    opt->method = @P@_METHOD_AUTO;
}

static void api_options(const @p@_options *opt, symode_options *o)
{
    @p@_options d;
    if (!opt) {
        @p@_default_options(&d);
        opt = &d;
    }
    o->rtol = opt->rtol;
    o->atol = opt->atol;
    o->h0 = opt->h0;
    o->hmax = opt->hmax;
    o->max_steps = opt->max_steps;
    o->method = opt->method;
}

static void api_stats_init(symode_stats *s)
{
    memset(s, 0, sizeof *s);
    s->fail_interval = -1;
    s->fail_t = NAN;
}

static void api_stats(const symode_stats *s, @p@_stats *out)
{
    if (!out) return;
    out->n_steps = s->n_steps; out->n_accepted = s->n_accepted; out->n_rejected = s->n_rejected;
    out->n_rhs = s->n_rhs; out->n_jac = s->n_jac; out->n_lu = s->n_lu;
    out->method_used = s->method_used; out->n_switches = s->n_switches;
    out->fail_interval = s->fail_interval; out->fail_t = s->fail_t;
}

const char *@p@_strerror(int status)
{
    return symode_strerror(status);
}

void @p@_dims(int *dims)
{
    if (!dims) return;
    dims[0] = API_NX; dims[1] = API_NP; dims[2] = API_NU; dims[3] = API_NUI; dims[4] = API_NY;
}

#define API_POINT(name, fn)                                                                      \
int @p@_##name(double t, const double *x, const double *p, const double *u, double *out)        \
{                                                                                                \
    if (!x || !out) return @P@_ERR_ARGS;                                                         \
    return fn(t, x, API_P(p), API_U(u), out) ? @P@_ERR_RHS : 0;                                  \
}
API_POINT(rhs, symode_rhs)
API_POINT(jac_x, symode_jac_x)
API_POINT(jac_p, symode_jac_p)
API_POINT(obs, symode_obs)
API_POINT(obs_jac_x, symode_obs_jac_x)
API_POINT(obs_jac_p, symode_obs_jac_p)

int @p@_interval_inputs(int nt, const double *times, const double *values, double *u)
{
    int i, k, j;
    if (nt < 1 || !times || (API_NUI > 0 && nt > 1 && !u)) return @P@_ERR_ARGS;
    for (i = 0; i + 1 < nt; i++) {
        double *row = u + (size_t)i * API_NUI;
        j = 0;
        for (k = 0; k < API_NU; k++) {
            double v0 = values ? values[(size_t)i * API_NU + k] : @P@_DEFAULT_INPUTS[k];
            if (!isfinite(v0)) return @P@_ERR_ARGS;
            row[k] = v0;
            if (@P@_INPUT_IS_LINEAR[k]) {
                double v1 = values ? values[(size_t)(i + 1) * API_NU + k] : @P@_DEFAULT_INPUTS[k];
                if (!isfinite(v1)) return @P@_ERR_ARGS;
                row[API_NU + j] = (v1 - v0) / (times[i + 1] - times[i]);
                j++;
            }
        }
        if (j > 0) row[API_NUI - 1] = times[i];
    }
    return 0;
}

int @p@_simulate(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                 const double *u, double *xout, @p@_stats *stats)
{
    symode_options o;
    symode_stats s;
    int rc;
    api_stats_init(&s);
    api_stats(&s, stats);
    if (API_U_MISSING(nt, u)) return @P@_ERR_ARGS;
    api_options(opt, &o);
    rc = symode_simulate(&o, nt, times, API_X0(x0), API_P(p), API_U(u), xout, &s);
    api_stats(&s, stats);
    return rc;
}

int @p@_observe(int nt, const double *times, const double *X, const double *p, const double *u, double *Y)
{
    if (nt < 1 || !times || !X || (API_NY > 0 && !Y) || API_U_MISSING(nt, u)) return @P@_ERR_ARGS;
    if (API_NY == 0) return 0;
    return symode_observe(nt, times, X, API_P(p), nt > 1 ? API_U(u) : api_no_inputs, Y) ? @P@_ERR_RHS : 0;
}

int @p@_noise_sigma(int n_rows, const double *data, double *sigma)
{
    int i, k;
    if (n_rows < 0 || (n_rows > 0 && API_NY > 0 && (!data || !sigma))) return @P@_ERR_ARGS;
    for (i = 0; i < n_rows; i++) {
        for (k = 0; k < API_NY; k++) {
            size_t idx = (size_t)i * API_NY + k;
            double d = data[idx];
            if (isfinite(d)) {
                double a = @P@_NOISE_ABSOLUTE[k], rd = @P@_NOISE_RELATIVE[k] * d;
                sigma[idx] = sqrt(a * a + rd * rd);
                if (!(sigma[idx] > 0.0)) return @P@_ERR_ARGS;
            } else {
                sigma[idx] = 1.0;
            }
        }
    }
    return 0;
}

/* Common argument checks of the loss functions; sigma given, or computed from the data into *owned
   (freed by the caller). */
static int api_loss_setup(int nt, const double *times, const double *u, const double *data, const double *sigma,
                          double *loss, double **owned, const double **sig)
{
    *owned = NULL;
    *sig = sigma;
    if (nt < 1 || !times || !loss || (API_NY > 0 && !data) || API_U_MISSING(nt, u)) return @P@_ERR_ARGS;
    *loss = 0.0;
    if (sigma) return 0;
    *owned = (double *)malloc(((size_t)nt * API_NY + 1) * sizeof(double));
    if (!*owned) return @P@_ERR_NOMEM;
    *sig = *owned;
    return @p@_noise_sigma(nt, data, *owned);
}

static const double *api_data(const double *data) { return data ? data : api_no_inputs; }

int @p@_loss(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
             const double *u, const double *data, const double *sigma, double *loss, @p@_stats *stats)
{
    const double *sig;
    double *owned, *X = NULL, *r = NULL;
    int rc;
    rc = api_loss_setup(nt, times, u, data, sigma, loss, &owned, &sig);
    if (!rc) {
        X = (double *)malloc((size_t)nt * API_NX * sizeof(double));
        r = (double *)malloc(((size_t)nt * API_NY + 1) * sizeof(double));
        if (!X || !r) rc = @P@_ERR_NOMEM;
    }
    if (!rc) {
        rc = @p@_simulate(opt, nt, times, x0, p, u, X, stats);
    } else if (stats) {
        symode_stats s;
        api_stats_init(&s);
        api_stats(&s, stats);
    }
    if (!rc && API_NY > 0)
        rc = symode_residual_loss(nt, times, X, API_P(p), API_U(u), api_data(data), sig, r, loss, NULL, NULL);
    free(owned);
    free(X);
    free(r);
    return rc;
}

int @p@_loss_forward(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                     const double *u, const double *data, const double *sigma, double *loss, double *grad,
                     double *rjac, double *r, @p@_stats *stats)
{
    symode_options o;
    symode_stats s;
    const double *sig;
    double *owned;
    int rc;
    api_stats_init(&s);
    rc = api_loss_setup(nt, times, u, data, sigma, loss, &owned, &sig);
    if (!rc && !grad) rc = @P@_ERR_ARGS;
    if (!rc) {
        api_options(opt, &o);
        rc = symode_grad_forward(&o, nt, times, API_X0(x0), API_P(p), API_U(u), api_data(data), sig, loss, grad,
                                 rjac, r, &s);
    }
    api_stats(&s, stats);
    free(owned);
    return rc;
}

int @p@_loss_adjoint(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                     const double *u, const double *data, const double *sigma, double *loss, double *grad,
                     @p@_stats *stats)
{
    symode_options o;
    symode_stats s;
    const double *sig;
    double *owned;
    int rc;
    api_stats_init(&s);
    rc = api_loss_setup(nt, times, u, data, sigma, loss, &owned, &sig);
    if (!rc && !grad) rc = @P@_ERR_ARGS;
    if (!rc) {
        api_options(opt, &o);
        rc = symode_grad_adjoint(&o, SYMODE_ADJ_INTERPOLATE, nt, times, API_X0(x0), API_P(p), API_U(u),
                                 api_data(data), sig, loss, grad, &s);
    }
    api_stats(&s, stats);
    free(owned);
    return rc;
}

int @p@_sensitivities(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                      const double *u, double *X, double *S, @p@_stats *stats)
{
    symode_options o;
    symode_stats s;
    int rc;
    api_stats_init(&s);
    if (nt < 1 || !times || !X || !S || API_U_MISSING(nt, u)) {
        api_stats(&s, stats);
        return @P@_ERR_ARGS;
    }
    api_options(opt, &o);
    rc = symode_sens(&o, nt, times, API_X0(x0), API_P(p), API_U(u), X, S, &s);
    api_stats(&s, stats);
    return rc;
}
"""

_C_DISCRETE = r"""
int @p@_loss_discrete(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                      const double *u, const double *data, const double *sigma, double *loss, double *grad,
                      double *rjac, double *r, @p@_stats *stats)
{
    symode_options o;
    symode_stats s;
    const double *sig;
    double *owned;
    int rc;
    api_stats_init(&s);
    rc = api_loss_setup(nt, times, u, data, sigma, loss, &owned, &sig);
    if (!rc && !grad) rc = @P@_ERR_ARGS;
    if (!rc) {
        api_options(opt, &o);
        rc = symode_grad_discrete(&o, nt, times, API_X0(x0), API_P(p), API_U(u), api_data(data), sig, loss,
                                  grad, rjac, r, &s);
    }
    api_stats(&s, stats);
    free(owned);
    return rc;
}
"""

_H_DISCRETE = r"""
/* Loss and the exact gradient of the DISCRETISED solution: the forward solve is recorded and
   differentiated through the integrator's own steps (discrete adjoint; forward mode when rjac is
   requested). Same arguments as @p@_loss_forward. */
int @p@_loss_discrete(const @p@_options *opt, int nt, const double *times, const double *x0, const double *p,
                      const double *u, const double *data, const double *sigma, double *loss, double *grad,
                      double *rjac, double *r, @p@_stats *stats);
"""


def _inline_local(name: str, sources: dict[str, str], seen: set[str]) -> str:
    """The text of ``name`` with its local ``#include "..."`` replaced by the (not yet seen) files they
    name, as the preprocessor would do; external functions made static."""
    def include(m: re.Match[str]) -> str:
        dep = m.group(1)
        if dep not in sources:
            raise SymodeError(f"cannot amalgamate: {name} includes unknown {dep}")  # pragma: no cover
        if dep in seen:
            return f"/* #include \"{dep}\" (above) */"
        seen.add(dep)
        return f"/* ---- {dep} (inlined) ---- */\n" + _inline_local(dep, sources, seen) + f"\n/* ---- end {dep} ---- */"

    text = re.sub(r'^#include "([\w.]+)"[ \t]*$', include, sources[name], flags=re.M)
    return _EXTERN_FN.sub("static ", text)


def _file_scope_names(text: str) -> tuple[set[str], set[str]]:
    """(static functions/variables and typedef names, macros) defined at file scope in C source ``text``."""
    names: set[str] = set()
    for m in re.finditer(r"^static\b(.*?)[;{]", text, re.M | re.S):
        decl = m.group(1)
        fn = re.match(r"[^(=]*?\b(\w+)\s*\(", decl)
        if fn:
            names.add(fn.group(1))
            continue
        declared = re.findall(r"\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*=", decl)
        if not declared:
            last = re.search(r"\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*$", decl)
            declared = [last.group(1)] if last else []
        names.update(declared)
    names.update(re.findall(r"^}\s*([A-Za-z_]\w*)\s*;", text, re.M))          # typedef struct {...} name;
    names.update(re.findall(r"^typedef\b[^;{]*?\b([A-Za-z_]\w*)\s*;", text, re.M))
    names.update(re.findall(r"^(?:struct|enum|union)\s+([A-Za-z_]\w*)\s*\{", text, re.M))
    macros = set(re.findall(r"^#\s*define\s+([A-Za-z_]\w*)", text, re.M))
    return names - macros, macros


def _separate_translation_units(sources: dict[str, str], order: list[str]) -> None:
    """Let .c files that were written as separate translation units share one: file-scope names that an
    earlier file already defines get a per-file suffix, and each file's macros are #undef'd after it."""
    taken: set[str] = set()
    for name in order:
        text = sources[name]
        names, macros = _file_scope_names(text)
        suffix = "_" + re.sub(r"\W", "_", name.removeprefix("symode_").removesuffix(".c"))
        for clash in sorted(names & taken):
            text = re.sub(rf"\b{clash}\b", clash + suffix, text)
        taken |= {n + suffix if n in taken else n for n in names}
        keep = {"CASADI_SYMBOL_EXPORT"}
        sources[name] = text + "\n" + "".join(f"#undef {m}\n" for m in sorted(macros - keep)
                                              if not m.endswith("_H"))


def _amalgamate(info: _ModelInfo, casadi_c: str, casadi_h: str, wrapper: str) -> str:
    """model.c: symode's C sources (codegen.C_SOURCES), CasADi's code and codegen's wrapper (the same
    code symode compiles), every function static, then the public API on top of the wrapper."""
    sources = {n: (codegen.CSRC / n).read_text() for n in codegen.C_SOURCES}
    # CasADi's header: only its work-array sizes (fn_SZ_*); its extern prototypes must not be repeated.
    sources["model_casadi.h"] = "\n".join(ln for ln in casadi_h.splitlines()
                                          if re.match(r"#define \w+_SZ_(ARG|RES|IW|W) ", ln))
    sources["model_casadi.c"] = _CASADI_EXTERN.sub("static ", casadi_c)
    sources["wrapper.c"] = wrapper
    _separate_translation_units(sources, [*(n for n in codegen.C_SOURCES if n.endswith(".c")), "wrapper.c"])
    seen: set[str] = set()
    parts = [_sub(_C_PREAMBLE, info, TABLE=_name_table(info))]
    for name in [n for n in codegen.C_SOURCES if n.endswith(".h")] + [n for n in codegen.C_SOURCES
                                                                     if n.endswith(".c")]:
        if name in seen:
            continue
        seen.add(name)
        parts.append(f"\n/* ---- {name} " + "-" * max(0, 86 - len(name)) + " */\n")
        parts.append(_inline_local(name, sources, seen))
    parts.append(_sub(_C_CASADI_START, info))
    seen.add("model_casadi.h")
    parts.append(sources["model_casadi.h"] + "\n" + _inline_local("model_casadi.c", sources, seen))
    parts.append(_sub(_C_WRAPPER_START, info))
    parts.append(_inline_local("wrapper.c", sources, seen))
    has_discrete = "symode_grad_discrete(" in wrapper
    linear = ", ".join([*("1" if n in info.linear else "0" for n in info.inputs), "0"])
    parts.append(_sub(
        _C_API, info, CNAME=info.name.replace("\\", "\\\\").replace('"', '\\"'),
        STATE_NAMES=_c_names(info.states), PARAM_NAMES=_c_names(info.parameters),
        INPUT_NAMES=_c_names(info.inputs), OBS_NAMES=_c_names(info.observables), INPUT_LINEAR="{" + linear + "}",
        X0=_c_doubles(info.x0_default), PDEF=_c_doubles(info.p_default), UDEF=_c_doubles(info.u_default),
        NABS=_c_doubles(info.noise_abs), NREL=_c_doubles(info.noise_rel)))
    if has_discrete:
        parts.append(_sub(_C_DISCRETE, info))
    return "".join(parts)


# ----------------------------------------------------------------------------------------------------
# example.c
# ----------------------------------------------------------------------------------------------------

_EXAMPLE = r"""/*
 * example.c -- simulate the model '@NAME@' from a CSV of inputs (uses only model.h).
 *
 *   @p@_example [options] INPUTS.csv [OUTPUT.csv]
 *
 * INPUTS.csv: a header row, then one row per sample time. The time column is the one named time,
 * time_h or t (else the first column); input columns are found by name (missing ones take their
 * default). Other columns are ignored, except observable columns with --gradient. Blank cells are
 * missing values. OUTPUT.csv (default: standard output): the time column and the states, %.17g.
 *
 * Options:
 *   --rtol R, --atol A          tolerances (default 1e-8, 1e-10)
 *   --method auto|explicit|stiff
 *   --param NAME=VALUE          override a parameter (repeatable)
 *   --x0 NAME=VALUE             override an initial state (repeatable)
 *   --gradient                  also print to stderr the loss and its gradient with respect to [x0, p]
 *                               against the CSV's observable columns, by forward sensitivities and
 *                               by the adjoint
 * Exit status: 0 on success, 1 on a solver failure, 2 on bad input.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ncol, nrow;
    char **names;     /* ncol */
    double *values;   /* nrow*ncol, NaN = blank */
} table;

static void free_table(table *tb)
{
    int j;
    if (tb->names)
        for (j = 0; j < tb->ncol; j++) free(tb->names[j]);
    free(tb->names);
    free(tb->values);
    memset(tb, 0, sizeof *tb);
}

static char *read_file(const char *path)
{
    FILE *fh = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (!fh) return NULL;
    for (;;) {
        if (cap - len < 4097) {
            char *nb;
            cap = cap ? 2 * cap : 65536;
            nb = (char *)realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(fh);
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len - 1, fh);
        len += n;
        if (n == 0) break;
    }
    fclose(fh);
    buf[len] = '\0';
    return buf;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '"') s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '"')) *--e = '\0';
    return s;
}

static char *dup_string(const char *s)
{
    char *d = (char *)malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static int count_cells(const char *line)
{
    int n = 1;
    for (; *line; line++)
        if (*line == ',') n++;
    return n;
}

/* Split line in place at commas into at most max cells; returns the number of cells. */
static int split(char *line, char **cells, int max)
{
    int n = 0;
    char *s = line;
    for (;;) {
        char *c = strchr(s, ',');
        if (n < max) cells[n] = s;
        n++;
        if (!c) break;
        *c = '\0';
        s = c + 1;
    }
    return n;
}

static int parse_csv(const char *path, table *tb)
{
    char *text = read_file(path), *line, *next;
    char **cells = NULL;
    int lineno = 0, cap = 0;
    memset(tb, 0, sizeof *tb);
    if (!text) {
        fprintf(stderr, "%s: cannot read file\n", path);
        return 2;
    }
    for (line = text; line; line = next) {
        char *nl = strchr(line, '\n'), *s;
        int n, j;
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        lineno++;
        s = trim(line);
        if (*s == '\0' || *s == '#') continue;
        if (!tb->names) {
            int count = count_cells(s);
            tb->names = (char **)calloc((size_t)count, sizeof(char *));
            cells = (char **)calloc((size_t)count, sizeof(char *));
            if (!tb->names || !cells) goto nomem;
            tb->ncol = count;
            split(s, cells, count);
            for (j = 0; j < count; j++)
                if (!(tb->names[j] = dup_string(trim(cells[j])))) goto nomem;
            continue;
        }
        n = split(s, cells, tb->ncol);
        if (n > tb->ncol) {
            fprintf(stderr, "%s:%d: %d cells but %d columns\n", path, lineno, n, tb->ncol);
            goto fail;
        }
        if (tb->nrow == cap) {
            double *nv;
            cap = cap ? 2 * cap : 1024;
            nv = (double *)realloc(tb->values, (size_t)cap * tb->ncol * sizeof(double));
            if (!nv) goto nomem;
            tb->values = nv;
        }
        for (j = 0; j < tb->ncol; j++) {
            double *dst = tb->values + (size_t)tb->nrow * tb->ncol + j;
            char *c = j < n ? trim(cells[j]) : (char *)"", *end;
            *dst = NAN;
            if (*c == '\0' || strcmp(c, "NA") == 0 || strcmp(c, "nan") == 0 || strcmp(c, "NaN") == 0) continue;
            *dst = strtod(c, &end);
            if (*trim(end) != '\0') {
                fprintf(stderr, "%s:%d: %s: not a number: '%s'\n", path, lineno, tb->names[j], c);
                goto fail;
            }
        }
        tb->nrow++;
    }
    free(cells);
    free(text);
    if (!tb->names || tb->nrow == 0) {
        fprintf(stderr, "%s: no header or no data rows\n", path);
        free_table(tb);
        return 2;
    }
    return 0;
nomem:
    fprintf(stderr, "out of memory\n");
fail:
    free(cells);
    free(text);
    free_table(tb);
    return 2;
}

static int column(const table *tb, const char *name)
{
    int j;
    for (j = 0; j < tb->ncol; j++)
        if (strcmp(tb->names[j], name) == 0) return j;
    return -1;
}

static int lookup(const char *const *names, int n, const char *name, size_t len)
{
    int k;
    for (k = 0; k < n; k++)
        if (strlen(names[k]) == len && strncmp(names[k], name, len) == 0) return k;
    return -1;
}

/* NAME=VALUE into values[index of NAME in names]. */
static int assign(const char *arg, const char *const *names, int n, double *values, const char *what)
{
    const char *eq = strchr(arg, '=');
    char *end;
    int k;
    if (!eq) {
        fprintf(stderr, "expected NAME=VALUE for %s, got '%s'\n", what, arg);
        return 2;
    }
    k = lookup(names, n, arg, (size_t)(eq - arg));
    if (k < 0) {
        fprintf(stderr, "unknown %s in '%s'\n", what, arg);
        return 2;
    }
    values[k] = strtod(eq + 1, &end);
    if (end == eq + 1 || *end != '\0' || !isfinite(values[k])) {
        fprintf(stderr, "not a finite number in '%s'\n", arg);
        return 2;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: @p@_example [--rtol R] [--atol A] [--method auto|explicit|stiff] "
                    "[--param NAME=VALUE]... [--x0 NAME=VALUE]... [--gradient] INPUTS.csv [OUTPUT.csv]\n");
}

static void print_gradient(const char *method, double loss, const double *grad)
{
    int j;
    fprintf(stderr, "loss (%s) = %.17g\n", method, loss);
    for (j = 0; j < @P@_NTHETA; j++)
        fprintf(stderr, "  dL/d%s%s = %.17g\n", j < @P@_NX ? "x0." : "",
                j < @P@_NX ? @P@_STATE_NAMES[j] : @P@_PARAMETER_NAMES[j - @P@_NX], grad[j]);
}

int main(int argc, char **argv)
{
    @p@_options opt;
    @p@_stats stats;
    table tb;
    double p[@P@_NP + 1], x0[@P@_NX + 1];
    double *times = NULL, *values = NULL, *u = NULL, *X = NULL, *data = NULL;
    const char *in = NULL, *outp = NULL;
    int i, j, k, rc = 0, tcol, gradient = 0, nt;
    FILE *out;

    @p@_default_options(&opt);
    memcpy(p, @P@_DEFAULT_PARAMETERS, sizeof p);
    memcpy(x0, @P@_DEFAULT_X0, sizeof x0);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--rtol") == 0 && has_value) opt.rtol = atof(argv[++i]);
        else if (strcmp(a, "--atol") == 0 && has_value) opt.atol = atof(argv[++i]);
        else if (strcmp(a, "--method") == 0 && has_value) {
            const char *m = argv[++i];
            if (strcmp(m, "auto") == 0) opt.method = @P@_METHOD_AUTO;
            else if (strcmp(m, "explicit") == 0) opt.method = @P@_METHOD_EXPLICIT;
            else if (strcmp(m, "stiff") == 0) opt.method = @P@_METHOD_STIFF;
            else { usage(); return 2; }
        } else if (strcmp(a, "--param") == 0 && has_value) {
            if (assign(argv[++i], @P@_PARAMETER_NAMES, @P@_NP, p, "parameter")) return 2;
        } else if (strcmp(a, "--x0") == 0 && has_value) {
            if (assign(argv[++i], @P@_STATE_NAMES, @P@_NX, x0, "state")) return 2;
        } else if (strcmp(a, "--gradient") == 0) gradient = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(); return 0; }
        else if (a[0] == '-' && a[1] != '\0') { usage(); return 2; }
        else if (!in) in = a;
        else if (!outp) outp = a;
        else { usage(); return 2; }
    }
    if (!in) { usage(); return 2; }
    if (parse_csv(in, &tb)) return 2;
    nt = tb.nrow;
    tcol = column(&tb, "time");
    if (tcol < 0) tcol = column(&tb, "time_h");
    if (tcol < 0) tcol = column(&tb, "t");
    if (tcol < 0) tcol = 0;
    times = (double *)malloc((size_t)nt * sizeof(double));
    values = (double *)malloc(((size_t)nt * @P@_NU + 1) * sizeof(double));
    u = (double *)malloc(((size_t)nt * @P@_NU_INTERVAL + 1) * sizeof(double));
    X = (double *)malloc((size_t)nt * @P@_NX * sizeof(double));
    if (!times || !values || !u || !X) { fprintf(stderr, "out of memory\n"); rc = 2; goto done; }
    for (i = 0; i < nt; i++) {
        times[i] = tb.values[(size_t)i * tb.ncol + tcol];
        if (!isfinite(times[i]) || (i > 0 && !(times[i] > times[i - 1]))) {
            fprintf(stderr, "%s: row %d: time must be finite and increase strictly\n", in, i + 1);
            rc = 2;
            goto done;
        }
    }
    for (k = 0; k < @P@_NU; k++) {
        int c = column(&tb, @P@_INPUT_NAMES[k]);
        if (c < 0 && !isfinite(@P@_DEFAULT_INPUTS[k])) {
            fprintf(stderr, "%s: missing input column '%s' (it has no default)\n", in, @P@_INPUT_NAMES[k]);
            rc = 2;
            goto done;
        }
        for (i = 0; i < nt; i++) {
            double v = c < 0 ? @P@_DEFAULT_INPUTS[k] : tb.values[(size_t)i * tb.ncol + c];
            if (!isfinite(v) && (i < nt - 1 || @P@_INPUT_IS_LINEAR[k])) {
                fprintf(stderr, "%s: row %d: missing value of input '%s'\n", in, i + 1, @P@_INPUT_NAMES[k]);
                rc = 2;
                goto done;
            }
            values[(size_t)i * @P@_NU + k] = isfinite(v) ? v : 0.0;
        }
    }
    if ((rc = @p@_interval_inputs(nt, times, values, u))) {
        fprintf(stderr, "invalid inputs: %s\n", @p@_strerror(rc));
        rc = 2;
        goto done;
    }
    rc = @p@_simulate(&opt, nt, times, x0, p, u, X, &stats);
    if (rc) {
        fprintf(stderr, "solver failed in interval %d at t=%g: %s\n", stats.fail_interval, stats.fail_t,
                @p@_strerror(rc));
        rc = 1;
        goto done;
    }
    out = (outp && strcmp(outp, "-") != 0) ? fopen(outp, "w") : stdout;
    if (!out) { fprintf(stderr, "%s: cannot write\n", outp); rc = 2; goto done; }
    fprintf(out, "%s", tb.names[tcol]);
    for (k = 0; k < @P@_NX; k++) fprintf(out, ",%s", @P@_STATE_NAMES[k]);
    fprintf(out, "\n");
    for (i = 0; i < nt; i++) {
        fprintf(out, "%.17g", times[i]);
        for (k = 0; k < @P@_NX; k++) fprintf(out, ",%.17g", X[(size_t)i * @P@_NX + k]);
        fprintf(out, "\n");
    }
    if (out != stdout && fclose(out) != 0) { fprintf(stderr, "%s: write failed\n", outp); rc = 2; goto done; }
    fprintf(stderr, "%d samples, %ld steps (%ld rejected), method at the end: %s\n", nt, stats.n_accepted,
            stats.n_rejected, stats.method_used == @P@_METHOD_STIFF ? "stiff" : "explicit");
    if (gradient) {
        double loss, grad[@P@_NTHETA + 1];
        data = (double *)malloc(((size_t)nt * @P@_NY + 1) * sizeof(double));
        if (!data) { fprintf(stderr, "out of memory\n"); rc = 2; goto done; }
        for (k = 0; k < @P@_NY; k++) {
            int c = column(&tb, @P@_OBSERVABLE_NAMES[k]);
            for (i = 0; i < nt; i++) data[(size_t)i * @P@_NY + k] = c < 0 ? NAN : tb.values[(size_t)i * tb.ncol + c];
        }
        rc = @p@_loss(&opt, nt, times, x0, p, u, data, NULL, &loss, &stats);
        if (rc) {
            fprintf(stderr, "loss failed: %s\n", @p@_strerror(rc));
            rc = 1;
            goto done;
        }
        fprintf(stderr, "loss (one forward solve) = %.17g\n", loss);
        for (j = 0; j < 2; j++) {
            rc = j == 0 ? @p@_loss_forward(&opt, nt, times, x0, p, u, data, NULL, &loss, grad, NULL, NULL, &stats)
                        : @p@_loss_adjoint(&opt, nt, times, x0, p, u, data, NULL, &loss, grad, &stats);
            if (rc) {
                fprintf(stderr, "gradient failed: %s\n", @p@_strerror(rc));
                rc = 1;
                goto done;
            }
            print_gradient(j == 0 ? "forward" : "adjoint", loss, grad);
        }
    }
done:
    free(times);
    free(values);
    free(u);
    free(X);
    free(data);
    free_table(&tb);
    return rc;
}
"""


def _example(info: _ModelInfo) -> str:
    return _sub(_EXAMPLE, info)


# ----------------------------------------------------------------------------------------------------
# Makefile
# ----------------------------------------------------------------------------------------------------

_MAKEFILE = """# Build the standalone solver of the symode model '@NAME@' (generated by symode codegen).
#   make            -> libmodel.so (shared library) and @p@_example (example program)
#   make check      -> run the example on a constant-input CSV
# Equivalent single commands:
#   cc @CFLAGS@ -fPIC -shared -o libmodel.so model.c -lm
#   cc @CFLAGS@ -o @p@_example example.c model.c -lm
CC ?= cc
CFLAGS ?= @CFLAGS@
LDLIBS ?= -lm

all: libmodel.so @p@_example

libmodel.so: model.c model.h
\t$(CC) $(CFLAGS) -fPIC -shared -o $@ model.c $(LDLIBS)

@p@_example: example.c model.c model.h
\t$(CC) $(CFLAGS) -o $@ example.c model.c $(LDLIBS)

check: @p@_example
\tprintf 'time@INPUT_HEADER@\\n0@INPUT_ROW@\\n1@INPUT_ROW@\\n2@INPUT_ROW@\\n' > check_inputs.csv
\t./@p@_example check_inputs.csv

clean:
\trm -f libmodel.so @p@_example check_inputs.csv

.PHONY: all check clean
"""


def _makefile(info: _ModelInfo) -> str:
    header = "".join(f",{n}" for n in info.inputs)
    row = "".join(f",{d if d is not None else 0.0!r}" for d in info.u_default)
    return _sub(_MAKEFILE, info, CFLAGS=MAKE_CFLAGS, INPUT_HEADER=header, INPUT_ROW=row).replace("\\t", "\t")


# ----------------------------------------------------------------------------------------------------
# model.py
# ----------------------------------------------------------------------------------------------------

_LOADER = '''"""Python loader of the standalone solver for the symode model '@NAME@'.

Generated by symode codegen (standalone v@VERSION@). Needs only numpy, ctypes and a C compiler: the first
use compiles model.c beside this file into libmodel.so (or loads it when it is up to date). No symode,
sympy or CasADi.

    import model
    X = model.simulate(times, inputs={"D": d_values})               # (len(times), len(model.STATES))
    loss, g_params, g_x0 = model.loss_and_gradient(times, data, inputs={"D": d_values})

See README.md for the conventions (inputs per interval, the noise model, missing data).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL_NAME = @MODEL_NAME@
PREFIX = @PREFIX@
STATES = @STATES@
PARAMETERS = @PARAMETERS@
INPUTS = @INPUTS@
LINEAR_INPUTS = @LINEAR_INPUTS@
OBSERVABLES = @OBSERVABLES@
DEFAULT_PARAMETERS = @DEFAULT_PARAMETERS@
DEFAULT_X0 = @DEFAULT_X0@
DEFAULT_INPUTS = @DEFAULT_INPUTS@
#: observable -> (absolute, relative): sigma^2 = absolute^2 + (relative * d)^2 at the data d
NOISE = @NOISE@
NU_INTERVAL = @NUI@
#: gradient methods of loss_and_gradient
GRADIENT_METHODS = @GRADIENT_METHODS@
METHODS = {"auto": 0, "explicit": 1, "stiff": 2}
CFLAGS = @CFLAGS@
ERRORS = {-1: "step budget exhausted (max_steps)", -2: "step size underflow",
          -3: "non-finite value (NaN/Inf) in the state or right-hand side", -4: "singular iteration matrix",
          -5: "model evaluation failed", -6: "invalid arguments", -7: "out of memory"}

__all__ = ["DEFAULT_PARAMETERS", "DEFAULT_X0", "INPUTS", "OBSERVABLES", "PARAMETERS", "STATES", "ModelError", "build",
           "load", "loss_and_gradient", "observe", "sigma", "simulate"]


class ModelError(RuntimeError):
    """The solver failed, or the C library could not be built."""


class _Options(ctypes.Structure):
    _fields_ = [("rtol", ctypes.c_double), ("atol", ctypes.c_double), ("h0", ctypes.c_double),
                ("hmax", ctypes.c_double), ("max_steps", ctypes.c_long), ("method", ctypes.c_int)]


class _Stats(ctypes.Structure):
    _fields_ = [("n_steps", ctypes.c_long), ("n_accepted", ctypes.c_long), ("n_rejected", ctypes.c_long),
                ("n_rhs", ctypes.c_long), ("n_jac", ctypes.c_long), ("n_lu", ctypes.c_long),
                ("method_used", ctypes.c_int), ("n_switches", ctypes.c_int), ("fail_interval", ctypes.c_int),
                ("fail_t", ctypes.c_double)]


_D = ctypes.POINTER(ctypes.c_double)
_LOCK = threading.Lock()
_LIB = None


def _compiler():
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise ModelError("no C compiler found to build libmodel.so (set $CC, or run make in " + str(HERE) + ")")


def _stale(lib):
    if not lib.exists():
        return True
    t = lib.stat().st_mtime
    return any((HERE / n).stat().st_mtime > t for n in ("model.c", "model.h"))


def build(force=False):
    """Compile model.c into libmodel.so beside this file (or, if that directory is read-only, into a
    temporary directory); return the library's path."""
    lib = HERE / "libmodel.so"
    if not force and not _stale(lib):
        return lib
    target_dir = HERE
    if not os.access(HERE, os.W_OK):
        digest = hashlib.sha256((HERE / "model.c").read_bytes()).hexdigest()[:16]
        target_dir = Path(tempfile.gettempdir()) / f"symode-standalone-{digest}"
        target_dir.mkdir(exist_ok=True)
        lib = target_dir / "libmodel.so"
        if not force and lib.exists():
            return lib
    fd, tmp = tempfile.mkstemp(prefix=".libmodel-", suffix=".so", dir=target_dir)
    os.close(fd)
    cmd = [_compiler(), *CFLAGS, "-fPIC", "-shared", "-o", tmp, str(HERE / "model.c"), "-lm"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ModelError("compiling model.c failed: " + (proc.stderr or proc.stdout).strip()[:2000])
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def load():
    """The ctypes library (built on first use)."""
    global _LIB
    with _LOCK:
        if _LIB is None:
            lib = ctypes.CDLL(str(build()))
            _declare(lib)
            _LIB = lib
        return _LIB


def _declare(lib):
    P = PREFIX
    i, opt, st = ctypes.c_int, ctypes.POINTER(_Options), ctypes.POINTER(_Stats)
    dims = (ctypes.c_int * 5)()
    getattr(lib, P + "_dims")(dims)
    if tuple(dims) != (len(STATES), len(PARAMETERS), len(INPUTS), NU_INTERVAL, len(OBSERVABLES)):
        raise ModelError(f"libmodel.so does not match model.py (dims {tuple(dims)}); rebuild with build(force=True)")
    names = (ctypes.c_char_p * (len(STATES) + 1)).in_dll(lib, P.upper() + "_STATE_NAMES")
    if [n.decode() for n in names[: len(STATES)]] != STATES:
        raise ModelError("libmodel.so does not match model.py (state names); rebuild with build(force=True)")
    sig = {
        "_simulate": [opt, i, _D, _D, _D, _D, _D, st],
        "_observe": [i, _D, _D, _D, _D, _D],
        "_loss": [opt, i, _D, _D, _D, _D, _D, _D, _D, st],
        "_loss_forward": [opt, i, _D, _D, _D, _D, _D, _D, _D, _D, _D, _D, st],
        "_loss_adjoint": [opt, i, _D, _D, _D, _D, _D, _D, _D, _D, st],
    }
    if "discrete" in GRADIENT_METHODS:
        sig["_loss_discrete"] = sig["_loss_forward"]
    for name, args in sig.items():
        fn = getattr(lib, P + name)
        fn.argtypes = args
        fn.restype = ctypes.c_int


def _ptr(a):
    return a.ctypes.data_as(_D)


def _times(times):
    t = np.ascontiguousarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or not np.all(np.isfinite(t)):
        raise ValueError("times must be a non-empty 1-D array of finite numbers")
    if np.any(np.diff(t) <= 0):
        raise ValueError("times must increase strictly")
    return t


def _vector(values, names, defaults, what):
    out = np.array([defaults[n] for n in names] + [0.0], dtype=np.float64)
    if values is None:
        return out
    if not isinstance(values, dict):
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size != len(names):
            raise ValueError(f"expected {len(names)} {what} values (or a dict by name), got {arr.size}")
        out[: len(names)] = arr
        return out
    for name, v in values.items():
        if name not in names:
            raise ValueError(f"unknown {what} {name!r} (known: {', '.join(names)})")
        out[names.index(name)] = float(v)
    return out


def _interval_inputs(times, inputs):
    """Per-interval input vectors (nt-1, NU_INTERVAL), flattened (as symode.solve.interval_inputs)."""
    nt = len(times)
    n = nt - 1
    inputs = dict(inputs or {})
    unknown = [k for k in inputs if k not in INPUTS]
    if unknown:
        raise ValueError(f"unknown input(s) {', '.join(unknown)} (known: {', '.join(INPUTS) or 'none'})")
    U = np.zeros((n, NU_INTERVAL))
    for k, name in enumerate(INPUTS):
        if name in inputs:
            v = inputs[name]
        elif DEFAULT_INPUTS[name] is not None:
            v = DEFAULT_INPUTS[name]
        else:
            raise ValueError(f"input {name!r} has no default: pass inputs={{{name!r}: values}}")
        arr = np.asarray(v, dtype=np.float64)
        arr = np.full(nt, float(arr)) if arr.ndim == 0 else arr.reshape(-1)
        need = (nt,) if name in LINEAR_INPUTS else (n, nt)
        if arr.size not in need:
            raise ValueError(f"input {name!r}: {arr.size} values for {nt} times "
                             f"(expected {' or '.join(str(x) for x in need)})")
        if not np.all(np.isfinite(arr[: (nt if name in LINEAR_INPUTS else n)])):
            raise ValueError(f"input {name!r} has NaN or infinite values")
        U[:, k] = arr[:n]
        if name in LINEAR_INPUTS:
            j = LINEAR_INPUTS.index(name)
            U[:, len(INPUTS) + j] = np.diff(arr) / np.diff(times)
    if LINEAR_INPUTS:
        U[:, -1] = times[:-1]
    return np.ascontiguousarray(U.reshape(-1) if U.size else np.zeros(1))


def _options(rtol, atol, method):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    return _Options(float(rtol), float(atol), 0.0, 0.0, 0, METHODS[method])


def _fail(what, status, stats, times):
    i = stats.fail_interval
    where = f" in interval [{times[i]:g}, {times[i + 1]:g}]" if 0 <= i < len(times) - 1 else ""
    raise ModelError(f"{what} failed{where}: {ERRORS.get(status, f'error {status}')}")


def _stats_dict(stats):
    d = {name: getattr(stats, name) for name, _ in _Stats._fields_}
    d["method_used"] = {1: "explicit", 2: "stiff"}.get(d["method_used"], "?")
    return d


def simulate(times, x0=None, params=None, inputs=None, rtol=1e-8, atol=1e-10, method="auto",
             return_stats=False):
    """States at the sample times, shape (len(times), len(STATES)).

    times: 1-D strictly increasing sample times (the integrator restarts at each).
    x0, params: dicts by name (or full arrays) overriding the baked-in defaults.
    inputs: name -> one value per interval [times[i], times[i+1]) (len(times)-1 values; len(times) values
        are accepted and the last one is ignored), or a scalar; missing inputs take their defaults.
        Linearly interpolated inputs need len(times) values.
    method: "auto" (Dormand-Prince 5(4), switching to Rodas4 when stiff), "explicit" or "stiff".
    return_stats: also return a dict of solver statistics.
    """
    lib = load()
    t = _times(times)
    U = _interval_inputs(t, inputs)
    x = _vector(x0, STATES, DEFAULT_X0, "state")
    p = _vector(params, PARAMETERS, DEFAULT_PARAMETERS, "parameter")
    X = np.empty((len(t), len(STATES)))
    opts, stats = _options(rtol, atol, method), _Stats()
    status = getattr(lib, PREFIX + "_simulate")(ctypes.byref(opts), len(t), _ptr(t), _ptr(x), _ptr(p), _ptr(U),
                                                _ptr(X), ctypes.byref(stats))
    if status:
        _fail("ODE solver", status, stats, t)
    return (X, _stats_dict(stats)) if return_stats else X


def observe(times, X, params=None, inputs=None):
    """Observables along a trajectory X, shape (len(times), len(OBSERVABLES))."""
    lib = load()
    t = _times(times)
    U = _interval_inputs(t, inputs)
    p = _vector(params, PARAMETERS, DEFAULT_PARAMETERS, "parameter")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.shape != (len(t), len(STATES)):
        raise ValueError(f"X must have shape {(len(t), len(STATES))}")
    Y = np.empty((len(t), max(len(OBSERVABLES), 1)))
    status = getattr(lib, PREFIX + "_observe")(len(t), _ptr(t), _ptr(X), _ptr(p), _ptr(U), _ptr(Y))
    if status:
        raise ModelError(f"observable evaluation failed: {ERRORS.get(status, status)}")
    return Y[:, : len(OBSERVABLES)]


def _data_matrix(data, nt):
    if isinstance(data, dict):
        unknown = [k for k in data if k not in OBSERVABLES]
        if unknown:
            raise ValueError(f"unknown observable(s) {', '.join(unknown)} (known: {', '.join(OBSERVABLES)})")
        cols = [np.asarray(data[o], dtype=np.float64).reshape(-1) if o in data else np.full(nt, np.nan)
                for o in OBSERVABLES]
        d = np.column_stack(cols) if cols else np.zeros((nt, 0))
    else:
        d = np.asarray(data, dtype=np.float64)
        if d.ndim == 1 and len(OBSERVABLES) == 1:
            d = d[:, None]
    if d.shape != (nt, len(OBSERVABLES)):
        raise ValueError(f"data must have shape {(nt, len(OBSERVABLES))} (columns {', '.join(OBSERVABLES)})")
    return np.ascontiguousarray(d)


def sigma(data):
    """Noise levels of the data by the spec's noise model (1.0 where data are missing)."""
    d = np.asarray(data, dtype=np.float64)
    absolute = np.array([NOISE[o][0] for o in OBSERVABLES])
    relative = np.array([NOISE[o][1] for o in OBSERVABLES])
    with np.errstate(invalid="ignore"):
        s = np.sqrt(absolute**2 + (relative * np.nan_to_num(d)) ** 2)
    s[~np.isfinite(d)] = 1.0
    if np.any(s[np.isfinite(d)] <= 0):
        raise ValueError("zero noise level for an observed value")
    return np.ascontiguousarray(s)


def loss_and_gradient(times, data, x0=None, params=None, inputs=None, method="forward", rtol=1e-8, atol=1e-10,
                      solver="auto"):
    """(loss, {parameter: dL/dp}, {state: dL/dx0}).

    L = 1/2 sum over observed (i, k) of ((y_k(t_i) - d_ik) / sigma_ik)^2 with the observables y =
    OBSERVABLES, sigma_ik^2 = absolute_k^2 + (relative_k d_ik)^2 (NOISE) and NaN data skipped.
    data: array (len(times), len(OBSERVABLES)) or dict observable -> values.
    method: "forward" (forward sensitivities), "adjoint" (continuous interpolating adjoint) or, when
        GRADIENT_METHODS lists it, "discrete" (exact gradient of the discretised solution).
    solver: integrator, as simulate's method.
    """
    if method not in GRADIENT_METHODS:
        raise ValueError(f"unknown gradient method {method!r} (choose from {', '.join(GRADIENT_METHODS)})")
    lib = load()
    t = _times(times)
    d = _data_matrix(data, len(t))
    s = sigma(d)
    U = _interval_inputs(t, inputs)
    x = _vector(x0, STATES, DEFAULT_X0, "state")
    p = _vector(params, PARAMETERS, DEFAULT_PARAMETERS, "parameter")
    grad = np.empty(len(STATES) + len(PARAMETERS) + 1)
    loss = ctypes.c_double()
    opts, stats = _options(rtol, atol, solver), _Stats()
    dp = _ptr(d) if d.size else _ptr(np.zeros(1))
    sp = _ptr(s) if s.size else _ptr(np.ones(1))
    if method in ("forward", "discrete"):
        null = ctypes.cast(None, _D)
        status = getattr(lib, PREFIX + "_loss_" + method)(
            ctypes.byref(opts), len(t), _ptr(t), _ptr(x), _ptr(p), _ptr(U), dp, sp, ctypes.byref(loss),
            _ptr(grad), null, null, ctypes.byref(stats))
    else:
        status = getattr(lib, PREFIX + "_loss_adjoint")(
            ctypes.byref(opts), len(t), _ptr(t), _ptr(x), _ptr(p), _ptr(U), dp, sp, ctypes.byref(loss),
            _ptr(grad), ctypes.byref(stats))
    if status:
        _fail(f"{method} gradient", status, stats, t)
    nx = len(STATES)
    return (loss.value, {n: float(grad[nx + j]) for j, n in enumerate(PARAMETERS)},
            {n: float(grad[j]) for j, n in enumerate(STATES)})
'''


def _loader(info: _ModelInfo) -> str:
    return _sub(
        _LOADER, info, MODEL_NAME=repr(info.name), PREFIX=repr(info.p), STATES=repr(info.states),
        PARAMETERS=_py_list(info.parameters), INPUTS=repr(info.inputs), LINEAR_INPUTS=repr(info.linear),
        OBSERVABLES=repr(info.observables),
        DEFAULT_PARAMETERS=_py_dict(dict(zip(info.parameters, info.p_default, strict=True))),
        DEFAULT_X0=_py_dict(dict(zip(info.states, info.x0_default, strict=True))),
        DEFAULT_INPUTS=_py_dict(dict(zip(info.inputs, info.u_default, strict=True))),
        NOISE=_py_dict({o: (a, r) for o, a, r in zip(info.observables, info.noise_abs, info.noise_rel,
                                                       strict=True)}),
        CFLAGS=repr(LOADER_CFLAGS),
        GRADIENT_METHODS=repr(["forward", "adjoint", *(["discrete"] if info.discrete else [])]))


def _py_value(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else '-float("inf")'
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_py_value(x) for x in v) + ")"
    return repr(v)


def _py_dict(d: dict[str, Any]) -> str:
    if not d:
        return "{}"
    items = [f"{k!r}: {_py_value(v)}" for k, v in d.items()]
    return "{\n" + "".join(f"    {it},\n" for it in items) + "}"


def _py_list(names: list[str]) -> str:
    text = repr(names)
    if len(text) < 100:
        return text
    return "[\n" + "\n".join(textwrap.wrap(", ".join(repr(n) for n in names) + ",", 110,
                                           initial_indent="    ", subsequent_indent="    ")) + "\n]"


# ----------------------------------------------------------------------------------------------------
# README.md
# ----------------------------------------------------------------------------------------------------

_README = """# Standalone solver: `@NAME@`

Generated by `symode codegen` (standalone v@VERSION@) from `spec.yaml`. Plain C99 (`model.c`,
`model.h`) plus an optional Python loader (`model.py`, ctypes + numpy only). Nothing here needs
symode, sympy or CasADi. Regenerate rather than edit.

| | |
|---|---|
| states (@NX@) | @STATES@ |
| parameters (@NP@) | @PARAMS@ |
| inputs (@NU@) | @INPUTS@ |
| observables (@NY@) | @OBS@ |

Default parameter values and initial states are baked in (`@P@_DEFAULT_PARAMETERS`, `@P@_DEFAULT_X0`;
in Python `DEFAULT_PARAMETERS`, `DEFAULT_X0`); every call can override them.

## Files

| file | |
|---|---|
| `model.h` | the public C API (below); names, dimensions and default values in comments and tables |
| `model.c` | one translation unit: f(t, x, p, u), df/dx, df/dp, the observables h and their Jacobians \
(generated by CasADi), symode's integrator and gradient code, and the API; all else is `static` |
| `example.c` | example program: CSV of inputs in, trajectory CSV out (`--gradient`: loss and gradient) |
| `Makefile` | builds `libmodel.so` and `@p@_example` |
| `model.py` | Python loader (ctypes + numpy) |
| `spec.yaml`, `manifest.json` | the spec this was generated from; names and version |

## Build

    make                      # libmodel.so and @p@_example, with @CFLAGS@

or by hand:

    cc @CFLAGS@ -fPIC -shared -o libmodel.so model.c -lm
    cc @CFLAGS@ -o @p@_example example.c model.c -lm

To embed the solver in your program, compile `model.c` with it (`cc ... yourprog.c model.c -lm`) or
link `libmodel.so`. Several generated models can be linked into one program when they are generated
with different `--prefix` values (all other symbols are `static`).

## The method

The time stepper is symode's: Dormand-Prince 5(4) with PI step-size control and error control on every
state (`err_i / (atol + rtol |x_i|)`, RMS norm) and stiffness detection, switching automatically to
the L-stable Rosenbrock method Rodas4 (analytic Jacobian, dense LU) when the problem is stiff and back
when it is not (`@P@_METHOD_AUTO`; `_EXPLICIT` and `_STIFF` force one method). The integrator stops and
restarts at every sample time, so inputs may jump there: inputs are piecewise constant on
`[times[i], times[i+1])` (or linear between samples when the spec says so).

Loss (Gaussian negative log-likelihood up to a constant, as `symode.gradient`):
`L = 1/2 sum_(i,k observed) ((y_k(t_i) - d_ik) / sigma_ik)^2`, with
`sigma_ik^2 = absolute_k^2 + (relative_k d_ik)^2` from the spec's noise model at the data `d`
(NaN = missing, skipped). Gradients are with respect to `theta = [x0, p]`:

* `@p@_loss_forward`: forward sensitivities `S' = Jx S + [0 | Jp]`, integrated with `x` under error
  control; also returns the residual Jacobian for Gauss-Newton / Levenberg-Marquardt.
* `@p@_loss_adjoint`: the continuous adjoint (Chen et al. 2018, Algorithm 1) `a' = -Jx^T a`
  backwards with jumps at the observations, `dL/dp = int Jp^T a dt`; `x(t)` comes from checkpoints at
  the sample times and Hermite interpolation (8 sub-steps per interval), not from unstable backward
  re-integration. Cost nearly independent of the number of parameters.

## C API (`model.h`)

Conventions: arrays over samples are row-major (`X[i*@P@_NX + k]`); single-point Jacobians are
column-major (`J[i + j*rows]`); `x0`/`p` may be `NULL` (defaults), `opt` may be `NULL` (rtol 1e-8,
atol 1e-10, automatic method), `stats` may be `NULL`; functions return 0 or a negative `@P@_ERR_*`
code (`@p@_strerror`). No global mutable state: all functions are re-entrant and thread-safe.

```c
#define @P@_NX, @P@_NP, @P@_NU, @P@_NU_INTERVAL, @P@_NY, @P@_NTHETA   /* dimensions */
extern const char *const @P@_STATE_NAMES[], @P@_PARAMETER_NAMES[], @P@_INPUT_NAMES[], @P@_OBSERVABLE_NAMES[];
extern const double @P@_DEFAULT_X0[], @P@_DEFAULT_PARAMETERS[], @P@_DEFAULT_INPUTS[];   /* NaN: no default */
extern const double @P@_NOISE_ABSOLUTE[], @P@_NOISE_RELATIVE[];

void @p@_default_options(@p@_options *opt);
int  @p@_rhs / @p@_jac_x / @p@_jac_p / @p@_obs / @p@_obs_jac_x / @p@_obs_jac_p
         (double t, const double *x, const double *p, const double *u, double *out);
int  @p@_interval_inputs(int nt, const double *times, const double *values, double *u);
int  @p@_simulate(const @p@_options *opt, int nt, const double *times, const double *x0,
                  const double *p, const double *u, double *xout, @p@_stats *stats);
int  @p@_observe(int nt, const double *times, const double *X, const double *p, const double *u, double *Y);
int  @p@_noise_sigma(int n_rows, const double *data, double *sigma);
int  @p@_loss(opt, nt, times, x0, p, u, data, sigma, &loss, stats);
int  @p@_loss_forward(opt, nt, times, x0, p, u, data, sigma, &loss, grad, rjac, r, stats);
int  @p@_loss_adjoint(opt, nt, times, x0, p, u, data, sigma, &loss, grad, stats);
int  @p@_sensitivities(opt, nt, times, x0, p, u, X, S, stats);
```

`u` holds one vector of `@P@_NU_INTERVAL` values per sample interval (`(nt-1)*@P@_NU_INTERVAL` values): for
piecewise-constant inputs simply the input values in `@P@_INPUT_NAMES` order;
`@p@_interval_inputs` builds it from values at the sample times (and handles linear inputs). `data`
and `sigma` are `nt*@P@_NY` values; `sigma = NULL` applies the noise model. See `model.h` for details.

Minimal use:

```c
#include "model.h"
double times[3] = {0, 1, 2}, u[2 * @P@_NU_INTERVAL + 1], X[3 * @P@_NX];
/* fill u: interval 0 then interval 1 */
int rc = @p@_simulate(NULL, 3, times, NULL, NULL, u, X, NULL);
if (rc) fprintf(stderr, "%s\\n", @p@_strerror(rc));
```

## Example program

    ./@p@_example inputs.csv trajectory.csv
    ./@p@_example --param NAME=VALUE --x0 NAME=VALUE --method stiff --rtol 1e-10 inputs.csv -
    ./@p@_example --gradient data.csv /dev/null     # also: loss and gradient against observable columns

`inputs.csv` has a header; the time column is `time`, `time_h` or `t` (else the first column); input
columns by name (missing ones take their defaults); other columns are ignored. The output has the
time column and the states at every input row (`%.17g`).

## Python loader (`model.py`)

Only numpy and the standard library. On first use it compiles `model.c` into `libmodel.so` beside
it (with `$CC`, `cc`, `gcc` or `clang`; into a temporary directory when this one is read-only) or loads
the existing library.

```python
import numpy as np
import model                                   # this directory on sys.path

model.STATES, model.PARAMETERS, model.INPUTS, model.OBSERVABLES      # name lists
X = model.simulate(times, x0=None, params=None, inputs=None, rtol=1e-8, atol=1e-10, method="auto")
# -> array (len(times), len(STATES))
loss, grad_params, grad_x0 = model.loss_and_gradient(times, data, x0=None, params=None, inputs=None,
                                                     method="forward")   # or "adjoint"
```

* `times`: 1-D, strictly increasing; `x0`, `params`: dicts by name (missing names keep the defaults).
* `inputs`: dict name -> values, one per interval `[times[i], times[i+1])` (`len(times)-1` values;
  `len(times)` values are accepted and the last is ignored), or a scalar.
* `data`: array `(len(times), len(OBSERVABLES))` or dict by observable; NaN = missing.
* Returns plain floats in dicts keyed by name. Errors: `ValueError` for bad arguments, `model.ModelError`
  when the solver fails or the library cannot be built.
* Also: `observe(times, X, params, inputs)`, `sigma(data)`, `build(force=False)`, `load()`.
"""


def _readme(info: _ModelInfo) -> str:
    def names(ns: list[str]) -> str:
        return ", ".join(f"`{n}`" for n in ns) or "—"

    return _sub(_README, info, STATES=names(info.states), PARAMS=names(info.parameters),
                INPUTS=names(info.inputs), OBS=names(info.observables), CFLAGS=MAKE_CFLAGS)
