"""The MLP of a neural term, in CasADi (code generation) and numpy (analysis, backpropagated Jacobians)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from symode.spec.schema import NeuralTerm


def act_casadi(name: str, z: Any) -> Any:
    import casadi as ca

    if name == "tanh":
        return ca.tanh(z)
    if name == "softplus":
        return ca.log1p(ca.exp(z))
    if name == "sigmoid":
        return 1 / (1 + ca.exp(-z))
    if name == "relu":
        return ca.fmax(z, 0)
    return z  # linear


def act_numpy(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0)
    return z


def mlp_casadi(term: NeuralTerm, inputs: Sequence[Any], weight: Callable[[str], Any]) -> list[Any]:
    """The outputs of ``term`` as CasADi SX expressions of ``inputs`` (one SX per input name) and of the
    weights (``weight(name)`` returns the SX of a weight parameter)."""
    import casadi as ca

    h = ca.vertcat(*[inp / term.input_scale.get(n, 1.0) for n, inp in zip(term.inputs, inputs, strict=True)])
    layers = term.layers()
    for k, (W, b) in enumerate(layers):
        Wm = ca.vertcat(*[ca.horzcat(*[weight(n) for n in row]) for row in W])
        bv = ca.vertcat(*[weight(n) for n in b])
        z = ca.mtimes(Wm, h) + bv
        h = act_casadi(term.activation if k < len(layers) - 1 else term.output_activation, z)
    return [h[i] * term.output_scale.get(o, 1.0) for i, o in enumerate(term.outputs)]


def mlp_numpy(term: NeuralTerm, inputs: Mapping[str, np.ndarray] | np.ndarray,
              weights: Mapping[str, float]) -> np.ndarray:
    """Outputs (n, n_outputs) of ``term`` for inputs (n, n_inputs) or {input name: values}."""
    if isinstance(inputs, Mapping):
        X = np.column_stack([np.asarray(inputs[n], dtype=float).reshape(-1) for n in term.inputs])
    else:
        X = np.atleast_2d(np.asarray(inputs, dtype=float))
    h = X / np.array([term.input_scale.get(n, 1.0) for n in term.inputs])
    layers = term.layers()
    for k, (W, b) in enumerate(layers):
        Wm = np.array([[weights[n] for n in row] for row in W])
        bv = np.array([weights[n] for n in b])
        h = act_numpy(term.activation if k < len(layers) - 1 else term.output_activation, h @ Wm.T + bv)
    return h * np.array([term.output_scale.get(o, 1.0) for o in term.outputs])


def _act_deriv(name: str, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """d act / dz given z and h = act(z)."""
    if name == "tanh":
        return 1 - h * h
    if name == "softplus":
        return 1 / (1 + np.exp(-z))
    if name == "sigmoid":
        return h * (1 - h)
    if name == "relu":
        return (z > 0).astype(float)
    return np.ones_like(z)


def mlp_numpy_jacobian(term: NeuralTerm, X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs (n, n_out) of ``term`` at inputs X (n, n_in) and weight vector ``w`` (order of
    :meth:`NeuralTerm.weight_names`), and their Jacobian (n, n_out, n_weights) by backpropagation."""
    h = np.atleast_2d(np.asarray(X, dtype=float)) / np.array([term.input_scale.get(n, 1.0) for n in term.inputs])
    sizes = term.sizes
    n_layers = len(sizes) - 1
    Ws, bs, hs, zs = [], [], [h], []
    k = 0
    for layer in range(n_layers):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        W = w[k:k + n_out * n_in].reshape(n_out, n_in)
        b = w[k + n_out * n_in:k + n_out * n_in + n_out]
        k += n_out * n_in + n_out
        z = hs[-1] @ W.T + b
        act = term.activation if layer < n_layers - 1 else term.output_activation
        Ws.append(W)
        bs.append(b)
        zs.append(z)
        hs.append(act_numpy(act, z))
    oscale = np.array([term.output_scale.get(o, 1.0) for o in term.outputs])
    n = h.shape[0]
    J = np.zeros((n, len(term.outputs), len(w)))
    for o in range(len(term.outputs)):
        delta = np.zeros((n, sizes[-1]))
        delta[:, o] = oscale[o] * _act_deriv(term.output_activation, zs[-1][:, o], hs[-1][:, o])
        cols = []
        for layer in range(n_layers - 1, -1, -1):
            cols.append(np.concatenate([(delta[:, :, None] * hs[layer][:, None, :]).reshape(n, -1), delta], axis=1))
            if layer > 0:
                delta = (delta @ Ws[layer]) * _act_deriv(term.activation, zs[layer - 1], hs[layer])
        J[:, o, :] = np.concatenate(cols[::-1], axis=1)
    return hs[-1] * oscale, J
