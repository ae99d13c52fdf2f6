"""The neural-ODE paper's Table 1 (Chen et al. 2018) offline, on scikit-learn's handwritten digits
(docs/neural-examples.md, "Example 4").

    python3 examples/odenet_digits.py [--epochs 30] [--json OUT.json] [--quick]

Data: ``sklearn.datasets.load_digits`` (1,797 8x8 images, 10 classes, shipped with scikit-learn), pixel
values / 16, a seeded stratified 80/20 split (1,437 training and 360 test images).

Four classifiers with the same input map z0 = A x + a (64 -> d), the same linear head (d -> 10) and the same
block f(z) = W2 tanh(W1 z + b1) + b2 (d -> h -> d), softmax cross-entropy, Adam (cosine learning rate,
decoupled weight decay), the same mini-batches (examples/digits_nets.py):

- MLP: z1 = f(z0), one hidden layer of width h;
- ResNet: L residual blocks z_{l+1} = z_l + f_l(z_l) / L, each with its own weights;
- RK-Net: z(1) of dz/dt = f(z) by N fixed RK4 steps, differentiated through the steps (numpy);
- ODE-Net: the same ODE integrated adaptively (Dormand-Prince 5(4)) by symode's compiled integrator, the
  block being a symode ``neural`` term, gradients by symode's continuous adjoint (Algorithm 1 of the paper;
  x(t) from the forward steps by Hermite interpolation, ``--adjoint backsolve`` re-integrates it
  backwards). The rows of a mini-batch share one compiled model and are solved one after the other.
  The adjoint is started from the head's gradient g = dL/dz(1) of each row: symode's adjoint takes its
  terminal condition from a least-squares loss 1/2 |z(1) - d|^2 (sigma 1), whose gradient at z(1) is
  z(1) - d, so the data d = z(1) - g make it start from exactly g.

Reported per model (as Table 1): test error, parameters, peak training memory and seconds per epoch.
Peak memory is that of one training step (forward, backward and Adam update on one mini-batch), the
largest over a few steps: the growth of the process's resident set, VmHWM after the step minus VmRSS
before it, with the high-water mark reset (/proc/self/clear_refs) and free heap memory returned
(malloc_trim) just before the step, so it counts every allocation the step touches, including those of
the compiled integrator; tracemalloc's peak (Python and numpy allocations only) is printed beside it.
Memory scaling: the ODE-Net's step at two tolerances (forward steps differ >= 3x) and the RK-Net's at two
step counts, at the trained weights.

``--json OUT.json`` writes exactly
``{"models": {"mlp"|"resnet"|"rknet"|"odenet": {"test_error": fraction of misclassified test images,
"parameters": int, "peak_memory_mb": float, "seconds_per_epoch": float (wall)}}, "memory_scaling":
{"odenet": {"steps": [a, b] (mean accepted forward steps per image), "peak_memory_mb": [c, d]},
"rknet": {"steps": [a, b] (RK4 steps), "peak_memory_mb": [c, d]}}}``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import math
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits_nets as nets  # noqa: E402

from symode import build_model  # noqa: E402
from symode.io import atomic_write_text  # noqa: E402
from symode.solve.sensitivity import Problem, loss_and_gradient  # noqa: E402
from symode.spec import spec_from_dict  # noqa: E402
from symode.spec.data import Dataset  # noqa: E402

KINDS = ("mlp", "resnet", "rknet", "odenet")
PAPER = {"mlp": ("1.60%", "0.24 M", "-", "-"), "resnet": ("0.41%", "0.60 M", "O(L)", "O(L)"),
         "rknet": ("0.47%", "0.22 M", "O(L~)", "O(L~)"), "odenet": ("0.42%", "0.22 M", "O(1)", "O(L~)")}
T_END = 1.0


# ====================================================================================================
# Data
# ====================================================================================================

def load_split(seed: int = 0, test_size: float = 0.2, subset: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test): load_digits / 16, stratified split; ``subset`` keeps a stratified
    random subset of that many images first (quick runs)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target.astype(int)
    if subset is not None and subset < len(y):
        X, _, y, _ = train_test_split(X, y, train_size=subset, stratify=y, random_state=seed)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    return Xtr, ytr, Xte, yte


# ====================================================================================================
# The ODE block as a symode model
# ====================================================================================================

def block_spec(d: int, h: int) -> Any:
    """dz/dt = f(z), f a symode neural term d -> h (tanh) -> d; every state observed with sigma 1."""
    zs = [f"z{i}" for i in range(d)]
    return spec_from_dict({
        "symode": 1, "name": f"odenet-block-{d}-{h}",
        "description": "ODE-Net block dz/dt = W2 tanh(W1 z + b1) + b2 (examples/odenet_digits.py)",
        "states": {z: {"x0": 0.0} for z in zs},
        "neural": [{"id": "f", "inputs": zs, "outputs": [f"f{i}" for i in range(d)], "hidden": [h],
                    "activation": "tanh", "output_activation": "linear"}],
        "parameters": {},
        "interactions": [{"type": "custom", "id": f"flow{i}", "rate": f"f.f{i}", "stoichiometry": {z: 1}}
                         for i, z in enumerate(zs)],
        "observables": {z: {"noise": {"absolute": 1.0}} for z in zs},
    }, file="<odenet-block>")


class OdeBlock:
    """z(1) of dz/dt = f(z) for every row of a batch with one compiled symode model, and the vector-Jacobian
    product g -> (dL/dz0, dL/dweights) by symode's continuous adjoint."""

    def __init__(self, d: int, h: int, *, rtol: float = 1e-3, atol: float = 1e-3, adjoint: str = "adjoint"
                 ) -> None:
        self.spec = block_spec(d, h)
        self.model = build_model(self.spec)
        self.d, self.rtol, self.atol, self.adjoint = d, rtol, atol, adjoint
        pindex = {n: k for k, n in enumerate(self.model.parameters)}
        (W1, b1), (W2, b2) = self.spec.neural[0].layers()
        self.index = {"W1": np.array([[pindex[n] for n in row] for row in W1]), "b1": np.array([pindex[n] for n in b1]),
                      "W2": np.array([[pindex[n] for n in row] for row in W2]), "b2": np.array([pindex[n] for n in b2])}
        self.p = self.model.parameter_vector()
        self.times = np.array([0.0, T_END])
        self.no_inputs = np.zeros(0)
        self.steps: list[int] = []       # accepted forward steps per solved row since the last reset

    def set_weights(self, P: nets.Params) -> None:
        for k, idx in self.index.items():
            self.p[idx] = P[f"blk0_{k}"]

    def solve(self, z0: np.ndarray) -> np.ndarray:
        r = self.model.backend.integrate(self.times, z0, self.p, self.no_inputs, rtol=self.rtol, atol=self.atol,
                                         method="explicit")
        if r.status != 0:
            raise RuntimeError(f"ODE solve failed: {r.message}")
        self.steps.append(int(r.stats["n_accepted"]))
        return r.x[-1]

    def forward(self, Z0: np.ndarray) -> np.ndarray:
        return np.array([self.solve(z) for z in Z0])

    def cotangent_problem(self, zT: np.ndarray, g: np.ndarray) -> Problem:
        """A one-sample problem whose loss 1/2 |z(1) - (zT - g)|^2 has gradient g at z(1) = zT."""
        data = np.vstack([np.full(self.d, np.nan), zT - g])
        ds = Dataset(times=self.times, columns={f"z{i}": data[:, i] for i in range(self.d)}, time_column="time",
                     file="<cotangent>")
        return Problem(self.model, ds)

    def backward(self, Z0: np.ndarray, ZT: np.ndarray, G: np.ndarray, grads: nets.Params) -> np.ndarray:
        """dL/dZ0 from G = dL/dZT (rows), adding dL/dweights to grads['blk0_*']."""
        dZ0 = np.empty_like(Z0)
        gp = np.zeros(len(self.p))
        for i in range(len(Z0)):
            res = loss_and_gradient(self.cotangent_problem(ZT[i], G[i]), params=self.p, x0=Z0[i], method=self.adjoint,
                                    rtol=self.rtol, atol=self.atol, solver="explicit")
            dZ0[i] = res.grad_x0
            gp += res.grad_p
        for k, idx in self.index.items():
            grads[f"blk0_{k}"] += gp[idx]
        return dZ0


# ====================================================================================================
# One network of the table: loss, gradient, prediction
# ====================================================================================================

class Net:
    def __init__(self, kind: str, P: nets.Params, *, blocks: int, steps: int, ode: OdeBlock | None = None) -> None:
        self.kind, self.P, self.blocks, self.steps, self.ode = kind, P, blocks, steps, ode

    def middle(self, Z0: np.ndarray) -> tuple[np.ndarray, Any]:
        if self.kind == "odenet":
            assert self.ode is not None
            self.ode.set_weights(self.P)
            return self.ode.forward(Z0), None
        return nets.middle_forward(self.kind, self.P, Z0, blocks=self.blocks, steps=self.steps, T=T_END)

    def loss_and_grads(self, X: np.ndarray, y: np.ndarray) -> tuple[float, nets.Params]:
        P = self.P
        Z0 = nets.encode(P, X)
        ZT, tape = self.middle(Z0)
        loss, dlogits = nets.softmax_xent(nets.head(P, ZT), y)
        grads = {k: np.zeros_like(v) for k, v in P.items()}
        dZT = nets.head_backward(P, ZT, dlogits, grads)
        if self.kind == "odenet":
            assert self.ode is not None
            dZ0 = self.ode.backward(Z0, ZT, dZT, grads)
        else:
            dZ0 = nets.middle_backward(self.kind, P, tape, dZT, grads, blocks=self.blocks, steps=self.steps, T=T_END)
        nets.encoder_backward(X, dZ0, grads)
        return loss, grads

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        return nets.softmax_xent(nets.head(self.P, self.middle(nets.encode(self.P, X))[0]), y)[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(nets.head(self.P, self.middle(nets.encode(self.P, X))[0]), axis=1)


def train_step(net: Net, opt: nets.Adam, X: np.ndarray, y: np.ndarray, lr: float) -> float:
    loss, grads = net.loss_and_grads(X, y)
    opt.step(net.P, grads, lr)
    return loss


def train(net: Net, Xtr: np.ndarray, ytr: np.ndarray, *, epochs: int, batch: int, lr: float, weight_decay: float,
          seed: int, log: Any = print) -> tuple[nets.Adam, list[dict[str, float]]]:
    """Adam with a cosine learning rate over all iterations; the same shuffles for every model (seed)."""
    rng = np.random.default_rng(seed)
    opt = nets.Adam(net.P, lr, weight_decay)
    n_batches = math.ceil(len(ytr) / batch)
    total, it, history = epochs * n_batches, 0, []
    for epoch in range(epochs):
        perm = rng.permutation(len(ytr))
        t0, c0, losses = time.perf_counter(), time.process_time(), []
        for b in range(n_batches):
            idx = perm[b * batch:(b + 1) * batch]
            losses.append(train_step(net, opt, Xtr[idx], ytr[idx], lr * 0.5 * (1 + math.cos(math.pi * it / total))))
            it += 1
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
                        "cpu_seconds": time.process_time() - c0})
        if log and (epoch == epochs - 1 or (epoch + 1) % max(1, epochs // 5) == 0):
            log(f"  {net.kind} epoch {epoch + 1}/{epochs}: loss {history[-1]['loss']:.4f}, "
                f"{history[-1]['seconds']:.1f} s")
    return opt, history


# ====================================================================================================
# Memory of one training step
# ====================================================================================================

def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


LIBC = _libc()


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_available() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status_kb("VmHWM")
        return True
    except (OSError, KeyError):
        return False


def step_peak_mb(step: Any) -> tuple[float | None, float]:
    """(resident-set growth during ``step()`` in MB or None where /proc is unavailable, tracemalloc peak above
    the traced memory at its start in MB); two separate runs of ``step``."""
    gc.collect()
    rss = None
    if rss_available():
        if LIBC is not None and hasattr(LIBC, "malloc_trim"):
            LIBC.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")   # VmHWM := current VmRSS
        before = _status_kb("VmRSS")
        step()
        rss = (_status_kb("VmHWM") - before) / 1024.0
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    step()
    traced = (tracemalloc.get_traced_memory()[1] - start) / 2**20
    tracemalloc.stop()
    return rss, traced


def measure_memory(net: Net, opt: nets.Adam, X: np.ndarray, y: np.ndarray, *, batch: int, n_steps: int,
                   seed: int = 1) -> dict[str, Any]:
    """Peak memory of ``n_steps`` training steps on copies of the weights and optimiser state (the trained
    model is not changed); the largest over the steps."""
    rng = np.random.default_rng(seed)
    P0 = {k: v.copy() for k, v in net.P.items()}
    m0, v0, t0 = {k: a.copy() for k, a in opt.m.items()}, {k: a.copy() for k, a in opt.v.items()}, opt.t
    if net.ode is not None:
        net.ode.steps = []
    rss, traced = [], []
    for _ in range(n_steps):
        idx = rng.choice(len(y), size=min(batch, len(y)), replace=False)
        r, t = step_peak_mb(lambda idx=idx: train_step(net, opt, X[idx], y[idx], opt.lr * 1e-3))
        rss.append(r)
        traced.append(t)
    steps = float(np.mean(net.ode.steps)) if net.ode is not None and net.ode.steps else float(net.steps)
    net.P.update(P0)
    opt.m, opt.v, opt.t = m0, v0, t0
    return {"rss_mb": None if rss[0] is None else float(max(rss)), "traced_mb": float(max(traced)), "steps": steps}


def peak_mb(mem: dict[str, Any]) -> float:
    """The reported peak: resident-set growth where available, else tracemalloc's."""
    return mem["rss_mb"] if mem["rss_mb"] is not None else mem["traced_mb"]


# ====================================================================================================
# Gradient check of the ODE-Net (adjoint vs central finite differences)
# ====================================================================================================

def odenet_gradient_check(net: Net, X: np.ndarray, y: np.ndarray, *, n_check: int = 12, rel_step: float = 1e-6,
                          tol: float = 1e-11, seed: int = 0) -> dict[str, Any]:
    """Loss gradient of the ODE-Net on the rows X (adjoint, tolerance ``tol``) against central differences
    of the loss (forward solves at ``tol``) for ``n_check`` random entries of each of A, the block and C."""
    assert net.ode is not None
    saved = net.ode.rtol, net.ode.atol
    net.ode.rtol = net.ode.atol = tol
    rng = np.random.default_rng(seed)
    _, grads = net.loss_and_grads(X, y)
    rows = []
    for key in ("A", "blk0_W1", "blk0_b2", "blk0_W2", "C"):
        flat = net.P[key].reshape(-1)
        for j in rng.choice(flat.size, size=min(n_check, flat.size), replace=False):
            old = flat[j]
            h = rel_step * max(abs(old), 1e-2)
            flat[j] = old + h
            lp = net.loss(X, y)
            flat[j] = old - h
            lm = net.loss(X, y)
            flat[j] = old
            rows.append((key, int(j), float(grads[key].reshape(-1)[j]), (lp - lm) / (2 * h)))
    net.ode.rtol, net.ode.atol = saved
    adj = np.array([r[2] for r in rows])
    fd = np.array([r[3] for r in rows])
    return {"max_abs_error": float(np.max(np.abs(adj - fd))), "max_abs_gradient": float(np.max(np.abs(fd))),
            "relative_error": float(np.max(np.abs(adj - fd)) / np.max(np.abs(fd))), "entries": rows}


# ====================================================================================================
# The table
# ====================================================================================================

def build_net(kind: str, *, d: int, h: int, blocks: int, steps: int, rtol: float, adjoint: str, seed: int,
              n_in: int = 64, n_classes: int = 10) -> Net:
    """Glorot-initialised network; the input map, head and first block are the same draws for every kind."""
    P = nets.init_params(kind, np.random.default_rng(seed), n_in, d, h, n_classes, blocks)
    ode = OdeBlock(d, h, rtol=rtol, atol=rtol, adjoint=adjoint) if kind == "odenet" else None
    return Net(kind, P, blocks=blocks, steps=steps, ode=ode)


def table_rows(results: dict[str, Any]) -> list[str]:
    rows = ["| model | test error | parameters | peak memory of a training step (MB) | s / epoch | paper (MNIST): "
            "error / parameters / memory / time |", "|---|---|---|---|---|---|"]
    for kind, r in results["models"].items():
        rows.append(f"| {kind} | {100 * r['test_error']:.2f}% | {r['parameters']} | {r['peak_memory_mb']:.2f} | "
                    f"{r['seconds_per_epoch']:.2f} | {' / '.join(PAPER[kind])} |")
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--width", type=int, default=32, help="d, the ODE's dimension")
    ap.add_argument("--hidden", type=int, default=64, help="h, the block's hidden width")
    ap.add_argument("--blocks", type=int, default=6, help="L, the ResNet's residual blocks")
    ap.add_argument("--rk-steps", type=int, default=4, help="N, the RK-Net's RK4 steps in training")
    ap.add_argument("--rtol", type=float, default=1e-3, help="ODE-Net tolerance in training (rtol = atol)")
    ap.add_argument("--adjoint", choices=("adjoint", "backsolve"), default="adjoint")
    ap.add_argument("--scaling-rk-steps", type=int, nargs=2, default=[4, 16])
    ap.add_argument("--scaling-tolerances", type=float, nargs=2, default=[1e-3, 1e-8])
    ap.add_argument("--memory-steps", type=int, default=3, help="training steps measured per setting (largest kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a 300-image subset, small model, 2 epochs (tests)")
    ap.add_argument("--json", help="write the results here (schema in the module docstring)")
    args = ap.parse_args(argv)
    if args.quick:
        args.width, args.hidden, args.epochs, args.blocks = 8, 16, 2, 3
        args.scaling_tolerances = [1e-3, 1e-10]     # the small untrained field needs fewer steps
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)     # small matrices: BLAS threads only fight on a busy machine
    except ImportError:  # pragma: no cover
        limit = None
    Xtr, ytr, Xte, yte = load_split(args.seed, subset=300 if args.quick else None)
    print(f"digits: {len(ytr)} training, {len(yte)} test images; d = {args.width}, h = {args.hidden}; memory: "
          f"{'resident-set growth' if rss_available() else 'tracemalloc (no /proc)'}", flush=True)
    results: dict[str, Any] = {"models": {}, "memory_scaling": {}}
    detail: dict[str, Any] = {}
    t_all = time.perf_counter()
    for kind in args.models:
        net = build_net(kind, d=args.width, h=args.hidden, blocks=args.blocks, steps=args.rk_steps, rtol=args.rtol,
                        adjoint=args.adjoint, seed=args.seed)
        opt, history = train(net, Xtr, ytr, epochs=args.epochs, batch=args.batch, lr=args.lr,
                             weight_decay=args.weight_decay, seed=args.seed)
        err = float(np.mean(net.predict(Xte) != yte))
        mem = measure_memory(net, opt, Xtr, ytr, batch=args.batch, n_steps=args.memory_steps)
        results["models"][kind] = {"test_error": err, "parameters": nets.count_parameters(net.P),
                                   "peak_memory_mb": peak_mb(mem),
                                   "seconds_per_epoch": float(np.mean([h["seconds"] for h in history]))}
        detail[kind] = {"memory": mem, "cpu_seconds_per_epoch": float(np.mean([h["cpu_seconds"] for h in history])),
                        "history": history}
        print(f"{kind}: test error {100 * err:.2f}%, {results['models'][kind]['parameters']} parameters, "
              f"peak {mem['rss_mb'] if mem['rss_mb'] is None else round(mem['rss_mb'], 3)} MB resident / "
              f"{mem['traced_mb']:.3f} MB traced, {results['models'][kind]['seconds_per_epoch']:.2f} s/epoch "
              f"({detail[kind]['cpu_seconds_per_epoch']:.2f} s CPU)", flush=True)
        if kind == "rknet":
            scaling = []
            for n in args.scaling_rk_steps:
                net.steps = n
                scaling.append(measure_memory(net, opt, Xtr, ytr, batch=args.batch, n_steps=args.memory_steps))
            net.steps = args.rk_steps
            detail["rknet_scaling"] = scaling
        if kind == "odenet":
            assert net.ode is not None
            scaling = []
            for tol in args.scaling_tolerances:
                net.ode.rtol = net.ode.atol = tol
                scaling.append(measure_memory(net, opt, Xtr, ytr, batch=args.batch, n_steps=args.memory_steps))
            net.ode.rtol = net.ode.atol = args.rtol
            detail["odenet_scaling"] = scaling
            detail["odenet_gradient_check"] = {k: v for k, v in odenet_gradient_check(net, Xtr[:3], ytr[:3]).items()
                                               if k != "entries"}
            print(f"odenet: adjoint vs finite differences on 3 images: relative error "
                  f"{detail['odenet_gradient_check']['relative_error']:.2e}", flush=True)
        for name, key in (("rknet", "rknet_scaling"), ("odenet", "odenet_scaling")):
            if kind == name:
                sc = detail[key]
                results["memory_scaling"][name] = {"steps": [s["steps"] for s in sc],
                                                   "peak_memory_mb": [peak_mb(s) for s in sc]}
                print(f"{name} memory scaling: steps {[round(s['steps'], 2) for s in sc]} -> peak "
                      f"{[round(peak_mb(s), 3) for s in sc]} MB (traced {[round(s['traced_mb'], 3) for s in sc]})",
                      flush=True)
    if limit is not None:
        limit.restore_original_limits()
    print()
    print("\n".join(table_rows(results)))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))
    return {**results, "detail": detail, "args": vars(args)}


if __name__ == "__main__":
    main()
