"""Calling a model's compiled library (ctypes), or CasADi's virtual machine when no C compiler exists.

Both backends expose the same small interface used by :mod:`symode.solve`:
``rhs``, ``jac_x``, ``jac_p``, ``obs``, ``obs_jac_x``, ``obs_jac_p`` at one point (t, x, p, U), and
``integrate`` over a grid of sample intervals. The compiled backend also has the gradients
(``workspace``, ``sensitivities``) and ``record``: a forward solve kept step by step, differentiated
afterwards as often as wanted (:class:`Recording`); the virtual machine refuses those.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symode.codegen.layout import Layout

METHODS = {"auto": 0, "explicit": 1, "stiff": 2}
METHOD_NAMES = {v: k for k, v in METHODS.items()}


class Options(ctypes.Structure):
    _fields_ = [("rtol", ctypes.c_double), ("atol", ctypes.c_double), ("h0", ctypes.c_double),
                ("hmax", ctypes.c_double), ("max_steps", ctypes.c_long), ("method", ctypes.c_int)]


class Stats(ctypes.Structure):
    _fields_ = [("n_steps", ctypes.c_long), ("n_accepted", ctypes.c_long), ("n_rejected", ctypes.c_long),
                ("n_rhs", ctypes.c_long), ("n_jac", ctypes.c_long), ("n_lu", ctypes.c_long),
                ("method_used", ctypes.c_int), ("n_switches", ctypes.c_int), ("fail_interval", ctypes.c_int),
                ("fail_t", ctypes.c_double)]


ERRORS = {-1: "step budget exhausted (max_steps)", -2: "step size underflow",
          -3: "non-finite value (NaN/Inf) in the state or right-hand side", -4: "singular iteration matrix",
          -5: "right-hand side evaluation failed", -6: "invalid arguments", -7: "out of memory"}


@dataclass
class IntegrationResult:
    """Raw result of integrating over a time grid."""

    x: np.ndarray           # (nt, nx)
    status: int             # 0 or a negative error code
    stats: dict[str, Any]

    @property
    def message(self) -> str:
        return "ok" if self.status == 0 else ERRORS.get(self.status, f"error {self.status}")


_DPTR = ctypes.POINTER(ctypes.c_double)


def _ptr(a: np.ndarray) -> Any:
    return a.ctypes.data_as(_DPTR)


class CompiledBackend:
    """A model's shared library loaded with ctypes."""

    kind = "compiled"

    def __init__(self, library: Path, layout: Layout) -> None:
        self.layout = layout
        self.path = library
        self.lib = ctypes.CDLL(str(library))
        self.nx, self.np, self.nU = len(layout.states), len(layout.parameters), layout.nu_interval
        self.ny = len(layout.observables)
        self._record_options: dict[tuple[float, float, str], Options] = {}
        self._no_inputs = np.zeros(max(self.nU, 1))   # the inputs of a model without any (read only)
        dims = (ctypes.c_int * 4)()
        self.lib.symode_model_dims(dims)
        if tuple(dims) != (self.nx, self.np, self.nU, self.ny):
            raise RuntimeError(f"library {library} does not match its layout")
        point = [ctypes.c_double, _DPTR, _DPTR, _DPTR, _DPTR]
        for name in ("symode_rhs", "symode_jac_x", "symode_jac_p", "symode_obs", "symode_obs_jac_x",
                     "symode_obs_jac_p"):
            fn = getattr(self.lib, name)
            fn.argtypes = point
            fn.restype = ctypes.c_int
        self.lib.symode_simulate.argtypes = [ctypes.POINTER(Options), ctypes.c_int, _DPTR, _DPTR, _DPTR, _DPTR,
                                             _DPTR, ctypes.POINTER(Stats)]
        self.lib.symode_simulate.restype = ctypes.c_int
        opt, st, i = ctypes.POINTER(Options), ctypes.POINTER(Stats), ctypes.c_int
        self.lib.symode_observe.argtypes = [i, _DPTR, _DPTR, _DPTR, _DPTR, _DPTR]
        self.lib.symode_sens.argtypes = [opt, i, _DPTR, _DPTR, _DPTR, _DPTR, _DPTR, _DPTR, st]
        self.lib.symode_sens_discrete.argtypes = self.lib.symode_sens.argtypes
        self.lib.symode_residual_loss.argtypes = [i, _DPTR, _DPTR, _DPTR, _DPTR, _DPTR, _DPTR, _DPTR, _DPTR,
                                                  _DPTR, _DPTR]
        # gradient entry points take raw addresses (see Workspace): no per-call pointer objects
        v = ctypes.c_void_p
        self.lib.symode_grad_forward.argtypes = [v, i, v, v, v, v, v, v, v, v, v, v, v]
        self.lib.symode_grad_discrete.argtypes = [v, i, v, v, v, v, v, v, v, v, v, v, v]
        self.lib.symode_grad_adjoint.argtypes = [v, i, i, v, v, v, v, v, v, v, v, v]
        self.lib.symode_record.argtypes = [v, i, v, v, v, v, v, v, v]
        self.lib.symode_record.restype = v
        self.lib.symode_record_adjoint.argtypes = [v, v, v, v, v, v]
        self.lib.symode_record_sens.argtypes = [v, v, v, v]
        self.lib.symode_record_sens_dense.argtypes = [v, v, v, v]
        self.lib.symode_record_sens_seeded.argtypes = [v, v, v, i, v, v]
        self.lib.symode_sens_seeded.argtypes = [v, i, v, v, v, v, i, v, v, v, v]
        self.lib.symode_record_free.argtypes = [v]
        self.lib.symode_record_free.restype = None

    def _point(self, name: str, shape: tuple[int, ...], t: float, x: np.ndarray, p: np.ndarray,
               U: np.ndarray) -> np.ndarray:
        x, p, U = _f64(x, self.nx), _f64(p, self.np), _f64(U, self.nU)
        out = np.empty(int(np.prod(shape)), dtype=np.float64)
        status = getattr(self.lib, name)(float(t), _ptr(x), _ptr(p), _ptr(U), _ptr(out))
        if status != 0:
            raise RuntimeError(f"{name} failed with status {status}")
        return out.reshape(shape[::-1]).T if len(shape) == 2 else out  # column-major matrices

    def rhs(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._point("symode_rhs", (self.nx,), t, x, p, U)

    def jac_x(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._point("symode_jac_x", (self.nx, self.nx), t, x, p, U)

    def jac_p(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._point("symode_jac_p", (self.nx, self.np), t, x, p, U)

    def obs(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._point("symode_obs", (self.ny,), t, x, p, U)

    def obs_jac_x(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._point("symode_obs_jac_x", (self.ny, self.nx), t, x, p, U)

    def obs_jac_p(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._point("symode_obs_jac_p", (self.ny, self.np), t, x, p, U)

    def integrate(self, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray, *, rtol: float,
                  atol: float, method: str, max_steps: int = 0, hmax: float = 0.0) -> IntegrationResult:
        times = np.ascontiguousarray(times, dtype=np.float64)
        nt = len(times)
        x0, p = _f64(x0, self.nx), _f64(p, self.np)
        U = np.ascontiguousarray(U, dtype=np.float64).reshape(-1)
        if U.size != max(nt - 1, 0) * self.nU:
            raise ValueError(f"expected {(nt - 1) * self.nU} interval inputs, got {U.size}")
        xout = np.empty((nt, self.nx), dtype=np.float64)
        opts = Options(rtol, atol, 0.0, hmax, max_steps, METHODS[method])
        stats = Stats()
        Uc = U if U.size else np.zeros(max(self.nU, 1))
        status = self.lib.symode_simulate(ctypes.byref(opts), nt, _ptr(times), _ptr(x0), _ptr(p), _ptr(Uc),
                                          _ptr(xout), ctypes.byref(stats))
        return IntegrationResult(xout, status, _stats(stats))


    # -- gradients (see csrc/symode_gradient.h) --------------------------------------------------------
    def _prep(self, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray) -> tuple[Any, ...]:
        times = np.ascontiguousarray(times, dtype=np.float64)
        U = np.ascontiguousarray(U, dtype=np.float64).reshape(-1)
        if U.size != max(len(times) - 1, 0) * self.nU:
            raise ValueError(f"expected {(len(times) - 1) * self.nU} interval inputs, got {U.size}")
        return times, _f64(x0, self.nx), _f64(p, self.np), (U if U.size else self._no_inputs)

    def observe(self, times: np.ndarray, X: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Observables at every sample time, (nt, ny)."""
        times, _, p, U = self._prep(times, np.zeros(self.nx), p, U)
        X = np.ascontiguousarray(X, dtype=np.float64)
        Y = np.empty((len(times), max(self.ny, 1)))
        if self.ny and self.lib.symode_observe(len(times), _ptr(times), _ptr(X), _ptr(p), _ptr(U), _ptr(Y)):
            raise RuntimeError("observable evaluation failed")
        return Y[:, : self.ny]

    def residual_loss(self, times: np.ndarray, X: np.ndarray, p: np.ndarray, U: np.ndarray, data: np.ndarray,
                      sigma: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss 1/2 sum r^2 and residuals r (nt, ny) of a trajectory X."""
        times, _, p, U = self._prep(times, np.zeros(self.nx), p, U)
        X, data, sigma = (np.ascontiguousarray(a, dtype=np.float64) for a in (X, data, sigma))
        r = np.empty_like(data)
        loss = ctypes.c_double()
        null = ctypes.cast(None, _DPTR)
        status = self.lib.symode_residual_loss(len(times), _ptr(times), _ptr(X), _ptr(p), _ptr(U), _ptr(data),
                                               _ptr(sigma), _ptr(r), ctypes.byref(loss), null, null)
        if status:
            raise RuntimeError(f"residual evaluation failed ({ERRORS.get(status, status)})")
        return loss.value, r

    def sensitivities(self, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray, *, rtol: float,
                      atol: float, method: str, discrete: bool = True, seed: np.ndarray | None = None
                      ) -> tuple[IntegrationResult, np.ndarray]:
        """States (nt, nx) and S = dx/d[x0, p] (nt, nx, nx+np), or with ``seed`` D ((nx+np, k)) the product
        S D (nt, nx, k), computed as k directions (the cost grows with k, not with nx+np).

        discrete=True (default): exact sensitivities of the discretised solution through the recorded
        steps (robust and fast for stiff problems: only nx x nx LU factorisations); False: continuous
        forward sensitivities integrated with x (independent check; slow when stiff, because the
        augmented system's Jacobian is dense)."""
        times, x0, p, U = self._prep(times, x0, p, U)
        nt, ns = len(times), self.nx + self.np
        X = np.empty((nt, self.nx))
        if seed is not None:
            if not discrete:
                raise ValueError("seeded sensitivities are discrete")
            D = _seed(seed, ns)
            G = np.empty((nt, self.nx, D.shape[1]))
            opts, stats = Options(rtol, atol, 0.0, 0.0, 0, METHODS[method]), Stats()
            status = (self.lib.symode_sens_seeded(ctypes.addressof(opts), nt, times.ctypes.data, x0.ctypes.data,
                                                  p.ctypes.data, U.ctypes.data, D.shape[1], D.ctypes.data,
                                                  X.ctypes.data, G.ctypes.data, ctypes.addressof(stats))
                      if D.shape[1] else self.lib.symode_simulate(ctypes.byref(opts), nt, _ptr(times), _ptr(x0),
                                                                  _ptr(p), _ptr(U), _ptr(X), ctypes.byref(stats)))
            return IntegrationResult(X, status, _stats(stats)), G
        S = np.empty((nt, ns, self.nx))  # column-major blocks
        opts, stats = Options(rtol, atol, 0.0, 0.0, 0, METHODS[method]), Stats()
        fn = self.lib.symode_sens_discrete if discrete else self.lib.symode_sens
        status = fn(ctypes.byref(opts), nt, _ptr(times), _ptr(x0), _ptr(p), _ptr(U), _ptr(X), _ptr(S),
                    ctypes.byref(stats))
        return IntegrationResult(X, status, _stats(stats)), np.transpose(S, (0, 2, 1))

    def record(self, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray, *, rtol: float, atol: float,
               method: str) -> Recording:
        """Integrate over ``times`` like :meth:`integrate`, recording every accepted step: the
        :class:`Recording` gives the states and the exact derivatives of this discrete solution, in reverse
        mode for any weights (:meth:`Recording.adjoint`) and in forward mode (:meth:`Recording.sensitivities`),
        without solving again."""
        times, x0, p, U = self._prep(times, x0, p, U)
        X = np.empty((len(times), self.nx))
        key = (rtol, atol, method)
        opts = self._record_options.get(key)
        if opts is None:   # read only by the C code: one per setting
            opts = self._record_options[key] = Options(rtol, atol, 0.0, 0.0, 0, METHODS[method])
        stats, status = Stats(), ctypes.c_int(0)
        handle = self.lib.symode_record(ctypes.addressof(opts), len(times), times.ctypes.data, x0.ctypes.data,
                                        p.ctypes.data, U.ctypes.data, X.ctypes.data, ctypes.addressof(stats),
                                        ctypes.addressof(status))
        if not handle:
            raise MemoryError("could not allocate the tape of a forward solve")
        return Recording(self, handle, times, p, U, X, status.value, stats)

    def workspace(self, times: np.ndarray, U: np.ndarray, data: np.ndarray, sigma: np.ndarray) -> Workspace:
        """Buffers and raw addresses for repeated gradient calls on one data set (the hot path of fitting
        and benchmarks: no per-call array conversions)."""
        return Workspace(self, times, U, data, sigma)

    def grad_forward(self, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray, data: np.ndarray,
                     sigma: np.ndarray, *, rtol: float, atol: float, method: str, jacobian: bool = False,
                     discrete: bool = False
                     ) -> tuple[int, float, np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any]]:
        """(status, loss, gradient wrt [x0, p], residual Jacobian or None, residuals or None, stats).

        discrete=False: continuous forward sensitivities; True: derivatives of the discretised solution
        through the recorded steps (reverse mode unless the Jacobian is requested)."""
        ws = self.workspace(times, U, data, sigma)
        return ws.gradient("discrete" if discrete else "forward", x0, p, rtol=rtol, atol=atol, method=method,
                           jacobian=jacobian)

    def grad_adjoint(self, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray, data: np.ndarray,
                     sigma: np.ndarray, *, rtol: float, atol: float, method: str, backsolve: bool = False
                     ) -> tuple[int, float, np.ndarray, dict[str, Any]]:
        """(status, loss, gradient wrt [x0, p], stats) by the continuous adjoint."""
        ws = self.workspace(times, U, data, sigma)
        status, loss, grad, _, _, stats = ws.gradient("backsolve" if backsolve else "adjoint", x0, p, rtol=rtol,
                                                      atol=atol, method=method)
        return status, loss, grad, stats


class Workspace:
    """Pre-allocated, pre-addressed arrays for one (times, inputs, data, sigma) problem."""

    def __init__(self, backend: CompiledBackend, times: np.ndarray, U: np.ndarray, data: np.ndarray,
                 sigma: np.ndarray) -> None:
        self.be = backend
        self.times, _, _, self.U = backend._prep(times, np.zeros(backend.nx), np.zeros(backend.np), U)
        self.data = np.ascontiguousarray(data, dtype=np.float64)
        self.sigma = np.ascontiguousarray(sigma, dtype=np.float64)
        self.nt = len(self.times)
        ns = backend.nx + backend.np
        self.x0 = np.zeros(max(backend.nx, 1))
        self.p = np.zeros(max(backend.np, 1))
        self.grad = np.zeros(ns)
        self.rjac: np.ndarray | None = None
        self.r: np.ndarray | None = None
        self.loss = ctypes.c_double()
        self.opts = Options()
        self.stats = Stats()
        addr = _addr
        self.a = {k: addr(getattr(self, k)) for k in ("times", "U", "data", "sigma", "x0", "p", "grad")}
        self.loss_ref, self.opts_ref, self.stats_ref = (ctypes.addressof(self.loss), ctypes.addressof(self.opts),
                                                        ctypes.addressof(self.stats))
        lib = backend.lib
        self.fns = {"forward": lib.symode_grad_forward, "discrete": lib.symode_grad_discrete,
                    "adjoint": lib.symode_grad_adjoint, "backsolve": lib.symode_grad_adjoint}

    def gradient(self, kind: str, x0: np.ndarray, p: np.ndarray, *, rtol: float, atol: float, method: str,
                 jacobian: bool = False
                 ) -> tuple[int, float, np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any]]:
        be, a = self.be, self.a
        self.x0[: be.nx] = x0
        self.p[: be.np] = p
        o = self.opts
        o.rtol, o.atol, o.method = rtol, atol, METHODS[method]
        fn = self.fns[kind]
        if kind in ("adjoint", "backsolve"):
            status = fn(self.opts_ref, int(kind == "backsolve"), self.nt, a["times"], a["x0"], a["p"], a["U"],
                        a["data"], a["sigma"], self.loss_ref, a["grad"], self.stats_ref)
        else:
            rj = r = None
            if jacobian:
                if self.rjac is None:
                    self.rjac = np.empty((self.data.size, be.nx + be.np))
                    self.r = np.empty(self.data.shape)
                rj, r = _addr(self.rjac), _addr(self.r)
            status = fn(self.opts_ref, self.nt, a["times"], a["x0"], a["p"], a["U"], a["data"], a["sigma"],
                        self.loss_ref, a["grad"], rj, r, self.stats_ref)
        return (status, self.loss.value, self.grad.copy(), self.rjac.copy() if jacobian else None,
                self.r.copy() if jacobian else None, _stats(self.stats))


class Recording(IntegrationResult):
    """A recorded forward solve (:meth:`CompiledBackend.record`): ``x`` (nt, nx) on the grid, ``status``
    and ``stats`` as :class:`IntegrationResult`; the tape is released with the object."""

    def __init__(self, backend: CompiledBackend, handle: int, times: np.ndarray, p: np.ndarray, U: np.ndarray,
                 x: np.ndarray, status: int, stats: Stats) -> None:
        self.x, self.status, self._raw_stats = x, status, stats
        self.lib, self.handle, self.times, self.p, self.U = backend.lib, handle, times, p, U
        self._pu = (p.ctypes.data, U.ctypes.data)   # addresses of the arrays this object keeps alive
        self.nx, self.np = backend.nx, backend.np

    def __del__(self) -> None:
        handle, self.handle = getattr(self, "handle", None), None
        if handle:
            self.lib.symode_record_free(handle)

    @property
    def stats(self) -> dict[str, Any]:  # type: ignore[override]
        """The solver's counters (built on first access: the hot paths never read them)."""
        return _stats(self._raw_stats)

    def adjoint(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sum_i lam_i . dx(t_i)/dx0, sum_i lam_i . dx(t_i)/dp) through the recorded steps (discrete
        adjoint); ``lam`` (nt, nx)."""
        if self.status != 0:
            raise ValueError("the recorded solve failed: no derivatives")
        lam = np.ascontiguousarray(lam, dtype=np.float64)
        if lam.shape != self.x.shape:
            raise ValueError(f"expected weights of shape {self.x.shape}, got {lam.shape}")
        gx0, gp = np.empty(max(self.nx, 1)), np.empty(max(self.np, 1))
        rc = self.lib.symode_record_adjoint(self.handle, *self._pu, lam.ctypes.data, gx0.ctypes.data, gp.ctypes.data)
        if rc:
            raise RuntimeError(f"discrete adjoint failed ({ERRORS.get(rc, rc)})")
        return gx0[: self.nx], gp[: self.np]

    def sensitivities(self, seed: np.ndarray | None = None, *, dense: bool = False) -> np.ndarray:
        """S = dx(t_i)/d[x0, p] (nt, nx, nx+np) through the recorded steps (discrete forward mode), or with
        ``seed`` D ((nx+np, k)) the product S D (nt, nx, k), computed as k directions. ``dense``: S by the
        dense reference implementation (every product over all nx+np columns; for tests and benchmarks)."""
        if self.status != 0:
            raise ValueError("the recorded solve failed: no derivatives")
        nt = len(self.times)
        if seed is not None:
            D = _seed(seed, self.nx + self.np)
            G = np.zeros((nt, self.nx, D.shape[1]))
            rc = self.lib.symode_record_sens_seeded(self.handle, *self._pu, D.shape[1],
                                                    D.ctypes.data, G.ctypes.data) if D.shape[1] else 0
            if rc:
                raise RuntimeError(f"discrete sensitivities failed ({ERRORS.get(rc, rc)})")
            return G
        S = np.empty((nt, self.nx + self.np, self.nx))  # column-major blocks
        fn = self.lib.symode_record_sens_dense if dense else self.lib.symode_record_sens
        rc = fn(self.handle, *self._pu, S.ctypes.data)
        if rc:
            raise RuntimeError(f"discrete sensitivities failed ({ERRORS.get(rc, rc)})")
        return np.transpose(S, (0, 2, 1))


def _seed(seed: np.ndarray, ns: int) -> np.ndarray:
    """The seed as a C-contiguous (ns, k) array of float64 (row-major, as the C code reads it)."""
    D = np.ascontiguousarray(seed, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != ns:
        raise ValueError(f"expected a seed of shape ({ns}, k), got {D.shape}")
    return D


def _addr(a: np.ndarray) -> int:
    return a.ctypes.data


def _stats(stats: Stats) -> dict[str, Any]:
    info = {name: getattr(stats, name) for name, _ in Stats._fields_}
    info["method_used"] = METHOD_NAMES.get(info["method_used"], "?")
    return info


class VMBackend:
    """Fallback without a C compiler: CasADi's virtual machine and scipy's integrators (slow)."""

    kind = "casadi-vm"

    def __init__(self, functions: list[Any], layout: Layout) -> None:
        self.layout = layout
        self.fns = {fn.name(): fn for fn in functions}
        self.nx, self.np, self.nU = len(layout.states), len(layout.parameters), layout.nu_interval
        self.ny = len(layout.observables)

    def _call(self, name: str, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        out = self.fns[name](t, x, p, U)
        return np.array(out, dtype=np.float64)

    def rhs(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._call("sym_rhs", t, x, p, U).reshape(-1)

    def jac_x(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._call("sym_jac_x", t, x, p, U).reshape(self.nx, self.nx)

    def jac_p(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._call("sym_jac_p", t, x, p, U).reshape(self.nx, self.np)

    def obs(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._call("sym_obs", t, x, p, U).reshape(-1)

    def obs_jac_x(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._call("sym_obs_jac_x", t, x, p, U).reshape(self.ny, self.nx)

    def obs_jac_p(self, t: float, x: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self._call("sym_obs_jac_p", t, x, p, U).reshape(self.ny, self.np)

    def observe(self, times: np.ndarray, X: np.ndarray, p: np.ndarray, U: np.ndarray) -> np.ndarray:
        U = np.asarray(U, dtype=np.float64).reshape(max(len(times) - 1, 0), self.nU)
        Ui = np.vstack([U, U[-1:]]) if len(U) else np.zeros((len(times), self.nU))
        return np.array([self.obs(times[i], X[i], p, Ui[i]) for i in range(len(times))]).reshape(len(times), self.ny)

    def residual_loss(self, times: np.ndarray, X: np.ndarray, p: np.ndarray, U: np.ndarray, data: np.ndarray,
                      sigma: np.ndarray) -> tuple[float, np.ndarray]:
        r = np.where(np.isfinite(data), (self.observe(times, X, p, U) - np.nan_to_num(data)) / sigma, 0.0)
        return 0.5 * float(np.sum(r**2)), r

    def workspace(self, *args: Any) -> Any:
        from symode.errors import SymodeError

        raise SymodeError("gradients need the compiled backend: install a C compiler (cc/gcc) and rebuild")

    def record(self, *args: Any, **kwargs: Any) -> Any:
        return self.workspace()

    def integrate(self, times: np.ndarray, x0: np.ndarray, p: np.ndarray, U: np.ndarray, *, rtol: float,
                  atol: float, method: str, max_steps: int = 0, hmax: float = 0.0) -> IntegrationResult:
        from scipy.integrate import solve_ivp

        nt = len(times)
        U = np.asarray(U, dtype=np.float64).reshape(max(nt - 1, 0), self.nU)
        xout = np.full((nt, self.nx), np.nan)
        xout[0] = x0
        scipy_method = {"auto": "LSODA", "explicit": "DOP853", "stiff": "BDF"}[method]
        nfev = 0
        for i in range(nt - 1):
            Ui = U[i]
            sol = solve_ivp(lambda t, x, Ui=Ui: self.rhs(t, x, p, Ui), (times[i], times[i + 1]), xout[i],
                            method=scipy_method, rtol=rtol, atol=atol,
                            jac=None if scipy_method == "DOP853" else (lambda t, x, Ui=Ui: self.jac_x(t, x, p, Ui)))
            nfev += sol.nfev
            if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
                stats = {"fail_interval": i, "fail_t": float(times[i]), "n_rhs": nfev, "method_used": method}
                return IntegrationResult(xout, -2, stats)
            xout[i + 1] = sol.y[:, -1]
        return IntegrationResult(xout, 0, {"n_rhs": nfev, "fail_interval": -1, "method_used": method})


def _f64(a: Any, n: int) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise ValueError(f"expected {n} values, got {arr.size}")
    return arr if n else np.zeros(1)
