"""Numpy parts of the digits example (examples/odenet_digits.py): the shared input map and classifier head,
the residual block f, the 1-hidden-layer MLP, the ResNet and the RK-Net (fixed-step RK4 differentiated
through its steps), softmax cross-entropy and Adam. Everything is batched over rows.

Block (the ODE's vector field, autonomous):  f(z) = W2 tanh(W1 z + b1) + b2,  z in R^d, hidden width h.

    input map   z0 = A x + a                      (64 -> d)
    MLP         z1 = f(z0)                        (one hidden layer of width h, no skip connection)
    ResNet      z_{l+1} = z_l + f_l(z_l) / L      (L blocks, own weights each; = Euler on [0, 1])
    RK-Net      z(1) by N classical RK4 steps of dz/dt = f(z), one f for all steps
    head        logits = C z_end + c              (d -> 10), loss = mean softmax cross-entropy
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Params = dict[str, np.ndarray]


def glorot(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    lim = math.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-lim, lim, size=(n_out, n_in))


def init_block(rng: np.random.Generator, d: int, h: int) -> Params:
    return {"W1": glorot(rng, h, d), "b1": np.zeros(h), "W2": glorot(rng, d, h), "b2": np.zeros(d)}


def init_params(kind: str, rng: np.random.Generator, n_in: int, d: int, h: int, n_classes: int,
                blocks: int) -> Params:
    """Input map A, a; head C, c; one block (``blk0_*``) or, for the ResNet, ``blocks`` of them."""
    P: Params = {"A": glorot(rng, d, n_in), "a": np.zeros(d), "C": glorot(rng, n_classes, d),
                 "c": np.zeros(n_classes)}
    for b in range(blocks if kind == "resnet" else 1):
        P.update({f"blk{b}_{k}": v for k, v in init_block(rng, d, h).items()})
    return P


def block(P: Params, b: int) -> Params:
    return {k: P[f"blk{b}_{k}"] for k in ("W1", "b1", "W2", "b2")}


def count_parameters(P: Params) -> int:
    return int(sum(v.size for v in P.values()))


# -- the block f and its reverse mode ------------------------------------------------------------------

def f_forward(B: Params, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(Z) for rows Z (n, d) and the hidden activations H (n, h) kept for the backward pass."""
    H = np.tanh(Z @ B["W1"].T + B["b1"])
    return H @ B["W2"].T + B["b2"], H


def f_backward(B: Params, Z: np.ndarray, H: np.ndarray, dF: np.ndarray, grads: Params, prefix: str) -> np.ndarray:
    """Adds dL/d(weights) to grads[prefix + name] and returns dL/dZ, given dL/dF."""
    dA = (dF @ B["W2"]) * (1.0 - H * H)
    grads[prefix + "W2"] += dF.T @ H
    grads[prefix + "b2"] += dF.sum(0)
    grads[prefix + "W1"] += dA.T @ Z
    grads[prefix + "b1"] += dA.sum(0)
    return dA @ B["W1"]


# -- loss -------------------------------------------------------------------------------------------------

def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient wrt the logits."""
    s = logits - logits.max(1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(1, keepdims=True)
    n = len(y)
    loss = -float(np.mean(np.log(p[np.arange(n), y] + 1e-300)))
    p[np.arange(n), y] -= 1.0
    return loss, p / n


def encode(P: Params, X: np.ndarray) -> np.ndarray:
    return X @ P["A"].T + P["a"]


def head(P: Params, Z: np.ndarray) -> np.ndarray:
    return Z @ P["C"].T + P["c"]


def head_backward(P: Params, Zend: np.ndarray, dlogits: np.ndarray, grads: Params) -> np.ndarray:
    """Adds the head's gradients (from dL/dlogits) to grads; returns dL/dZend."""
    grads["C"] += dlogits.T @ Zend
    grads["c"] += dlogits.sum(0)
    return dlogits @ P["C"]


def encoder_backward(X: np.ndarray, dZ0: np.ndarray, grads: Params) -> None:
    grads["A"] += dZ0.T @ X
    grads["a"] += dZ0.sum(0)


# -- the three numpy middles: forward with a tape, backward through it -----------------------------------

def middle_forward(kind: str, P: Params, Z0: np.ndarray, *, blocks: int = 6, steps: int = 4, T: float = 1.0
                   ) -> tuple[np.ndarray, list[Any]]:
    """z_end and the tape of what the backward pass needs (grows with blocks / RK4 steps)."""
    tape: list[Any] = []
    if kind == "mlp":
        F, H = f_forward(block(P, 0), Z0)
        tape.append((Z0, H))
        return F, tape
    if kind == "resnet":
        Z = Z0
        for b in range(blocks):
            F, H = f_forward(block(P, b), Z)
            tape.append((Z, H))
            Z = Z + F / blocks
        return Z, tape
    if kind == "rknet":
        B, dt, Z = block(P, 0), T / steps, Z0
        for _ in range(steps):
            k1, H1 = f_forward(B, Z)
            U2 = Z + 0.5 * dt * k1
            k2, H2 = f_forward(B, U2)
            U3 = Z + 0.5 * dt * k2
            k3, H3 = f_forward(B, U3)
            U4 = Z + dt * k3
            k4, H4 = f_forward(B, U4)
            tape.append(((Z, H1), (U2, H2), (U3, H3), (U4, H4)))
            Z = Z + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return Z, tape
    raise ValueError(kind)


def middle_backward(kind: str, P: Params, tape: list[Any], dZ: np.ndarray, grads: Params, *, blocks: int = 6,
                    steps: int = 4, T: float = 1.0) -> np.ndarray:
    """dL/dZ0 from dL/dZend, adding the block gradients to grads."""
    if kind == "mlp":
        Z0, H = tape[0]
        return f_backward(block(P, 0), Z0, H, dZ, grads, "blk0_")
    if kind == "resnet":
        for b in range(blocks - 1, -1, -1):
            Z, H = tape[b]
            dZ = dZ + f_backward(block(P, b), Z, H, dZ / blocks, grads, f"blk{b}_")
        return dZ
    if kind == "rknet":
        B, dt = block(P, 0), T / steps
        for (Z, H1), (U2, H2), (U3, H3), (U4, H4) in reversed(tape):
            dk1, dk2, dk3, dk4 = dt / 6.0 * dZ, dt / 3.0 * dZ, dt / 3.0 * dZ, dt / 6.0 * dZ
            dU4 = f_backward(B, U4, H4, dk4, grads, "blk0_")
            dk3 = dk3 + dt * dU4
            dU3 = f_backward(B, U3, H3, dk3, grads, "blk0_")
            dk2 = dk2 + 0.5 * dt * dU3
            dU2 = f_backward(B, U2, H2, dk2, grads, "blk0_")
            dk1 = dk1 + 0.5 * dt * dU2
            dU1 = f_backward(B, Z, H1, dk1, grads, "blk0_")
            dZ = dZ + dU4 + dU3 + dU2 + dU1
        return dZ
    raise ValueError(kind)


def rk4_solve(B: Params, Z0: np.ndarray, steps: int, T: float = 1.0) -> np.ndarray:
    """z(T) of dz/dt = f(z) by ``steps`` RK4 steps, without a tape (evaluation)."""
    dt, Z = T / steps, Z0
    for _ in range(steps):
        k1 = f_forward(B, Z)[0]
        k2 = f_forward(B, Z + 0.5 * dt * k1)[0]
        k3 = f_forward(B, Z + 0.5 * dt * k2)[0]
        k4 = f_forward(B, Z + dt * k3)[0]
        Z = Z + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return Z


# -- optimiser -----------------------------------------------------------------------------------------

class Adam:
    """Adam (Kingma & Ba) with decoupled weight decay on the weight matrices (not on biases)."""

    def __init__(self, P: Params, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr, self.wd, self.b1, self.b2, self.eps = lr, weight_decay, betas[0], betas[1], eps
        self.m = {k: np.zeros_like(v) for k, v in P.items()}
        self.v = {k: np.zeros_like(v) for k, v in P.items()}
        self.t = 0

    def step(self, P: Params, grads: Params, lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        self.t += 1
        c1, c2 = 1.0 - self.b1**self.t, 1.0 - self.b2**self.t
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1.0 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1.0 - self.b2) * g * g
            if self.wd and P[k].ndim == 2:
                P[k] -= lr * self.wd * P[k]
            P[k] -= lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)
