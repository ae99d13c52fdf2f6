"""Warm starts of hybrid training sized from the data: network weights that mimic a Monod-type uptake
(:func:`warm_start`) and production rates / uptake yields balanced with the observed metabolite levels
(:func:`balanced_rates`), plus the data summaries they use (typical input levels, mean dilution rate)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from symode.parallel.threads import blas_threads
from symode.spec.data import Dataset
from symode.spec.schema import NeuralTerm, Spec
from symode.symbolic.mlp import mlp_numpy, mlp_numpy_jacobian


def typical_inputs(spec: Spec, term: NeuralTerm, data: Dataset) -> dict[str, tuple[float, float, float]]:
    """(low, typical, high) of each network input: from the data where observed, else from x0 and the
    term's input scale."""
    out: dict[str, tuple[float, float, float]] = {}
    for n in term.inputs:
        col = data.columns.get(n)
        vals = col[np.isfinite(col)] if col is not None else np.zeros(0)
        if vals.size >= 3:
            lo, mid, hi = (float(v) for v in np.percentile(vals, [1, 50, 99]))
        else:
            s = float(term.input_scale.get(n, 1.0))
            x0 = float(spec.states[n].x0) if n in spec.states else s
            lo, mid, hi = 0.0, max(abs(x0), s), 3 * max(abs(x0), s)
        out[n] = (lo, mid if mid > 0 else max(hi, 1e-3) / 2, hi)
    return out


def mean_dilution(spec: Spec, data: Dataset) -> float:
    """Mean dilution rate over the data (the input's default without a column; 0 for batch)."""
    dil = spec.reactor.dilution
    d_col = data.columns.get(dil) if dil else None
    if d_col is not None and np.isfinite(d_col).any():
        return float(np.nanmean(d_col))
    if dil and dil in spec.inputs and spec.inputs[dil].default is not None:
        return float(spec.inputs[dil].default or 0.0)
    return 0.0


def uptake_outputs(spec: Spec, term: NeuralTerm) -> dict[str, str]:
    """{output: substrate} for the outputs of ``term`` used as the rate of an uptake (law ``neural``) of a
    substrate that is one of the term's inputs."""
    sub: dict[str, str] = {}
    for e in spec.interactions:
        if e.kind == "uptake" and e.law == "neural" and e.rate and e.rate.startswith(term.id + "."):
            o = e.rate.split(".", 1)[1]
            if e.source in term.inputs:
                sub[o] = e.source
    return sub


def warm_start(spec: Spec, data: Dataset, *, emphasis: int | None = None, k_factor: float = 1.0,
               seed_shift: int = 0, n_points: int = 400) -> dict[str, float]:
    """Weights that make every neural term mimic a Monod-type law before training (a warm start).

    An output used as the rate of an ``uptake`` interaction (law ``neural``) of consumer C on substrate M
    becomes ``mu_o (M/K_M) / (1 + sum_j M_j/K_j)`` (the shared-saturation form of model (1); sum over the
    term's substrate inputs), K_M = ``k_factor`` x the median observed M, and the mu_o chosen so that the
    consumer's total specific growth at the median inputs equals the mean dilution rate (a chemostat
    consumer that neither washes out nor explodes). ``emphasis`` = k gives 80% of that growth to the k-th
    uptake output (None: equal shares). Other outputs keep the network's current map. The weights are
    fitted by least squares (scipy, ``n_points`` random inputs over the observed range, widened by half on
    each side) from the spec's weights, or from the Glorot weights of seed ``seed + seed_shift``.
    """
    with blas_threads(1):
        return _warm_start(spec, data, emphasis=emphasis, k_factor=k_factor, seed_shift=seed_shift,
                           n_points=n_points)


def _warm_start(spec: Spec, data: Dataset, *, emphasis: int | None, k_factor: float, seed_shift: int,
                n_points: int) -> dict[str, float]:
    d_mean = mean_dilution(spec, data)
    out: dict[str, float] = {}
    for t_index, term in enumerate(spec.neural):
        names = term.weight_names()
        w0 = {w: spec.parameters[w].value for w in names}
        if seed_shift:
            w0 = dataclasses.replace(term, seed=term.seed + seed_shift).initial_weights()
        sub = uptake_outputs(spec, term)
        if not sub or d_mean <= 0:
            out.update(w0)
            continue
        rng = np.random.default_rng(1009 * (t_index + 1) + seed_shift)
        typ = typical_inputs(spec, term, data)
        Xin = np.column_stack([rng.uniform(max(0.0, lo - 0.5 * (hi - lo)), hi + 0.5 * (hi - lo), n_points)
                               for lo, _, hi in (typ[n] for n in term.inputs)])
        target = mlp_numpy(term, Xin, w0)
        K = {m: k_factor * typ[m][1] for m in sub.values()}
        den = 1 + sum(Xin[:, term.inputs.index(m)] / K[m] for m in set(sub.values()))
        den_typ = 1 + sum(typ[m][1] / K[m] for m in set(sub.values()))
        outs = [o for o in term.outputs if o in sub]
        shares = np.full(len(outs), 1.0 / len(outs))
        if emphasis is not None and len(outs) > 1:
            shares = np.full(len(outs), 0.2 / (len(outs) - 1))
            shares[emphasis % len(outs)] = 0.8
        for o, share in zip(outs, shares, strict=True):
            m = sub[o]
            mu = share * d_mean * den_typ / (typ[m][1] / K[m])
            target[:, term.outputs.index(o)] = mu * (Xin[:, term.inputs.index(m)] / K[m]) / den
        scale = np.array([term.output_scale.get(o, 1.0) for o in term.outputs])

        def res(w: np.ndarray, _t: NeuralTerm = term, _X: np.ndarray = Xin, _y: np.ndarray = target,
                _s: np.ndarray = scale) -> np.ndarray:
            return ((mlp_numpy_jacobian(_t, _X, w)[0] - _y) / _s).ravel()

        def jac(w: np.ndarray, _t: NeuralTerm = term, _X: np.ndarray = Xin, _s: np.ndarray = scale) -> np.ndarray:
            J = mlp_numpy_jacobian(_t, _X, w)[1]
            return (J / _s[None, :, None]).reshape(-1, J.shape[2])

        fitted = least_squares(res, np.array([w0[n] for n in names]), jac=jac, method="trf", max_nfev=300,
                               x_scale="jac")
        out.update(dict(zip(names, (float(v) for v in fitted.x), strict=True)))
    return out


def spec_weights(spec: Spec) -> dict[str, float]:
    """The network weights' values in ``spec``."""
    return {n: spec.parameters[n].value for n in spec.neural_weights}


#: Share of a metabolite's turnover that :func:`balanced_rates` assigns to its consumption (the rest leaves
#: with the outflow).
CONSUMPTION_SHARE = 0.5


def balanced_rates(spec: Spec, data: Dataset, weights: Mapping[str, float],
                   share: float = CONSUMPTION_SHARE) -> dict[str, float]:
    """Starting values of the turnover of every metabolite fed by a network's uptake: the production rates
    ``v`` (law non_growth, rate v P) and the uptake yields of the ``neural`` uptakes, balanced with the data.

    At the observed median levels the production of M (by observed producers) equals the outflow
    D_mean M / (1 - ``share``) and the consumption by the network's uptakes (yield x rate x consumer, the
    rate from the network with ``weights`` at the typical inputs, the consumer from the data or its x0)
    takes ``share`` of it (metabolites without such a production are left alone). Production and
    consumption of a metabolite observed only at its quasi-steady level are nearly interchangeable for the
    fit (only transients tell their sum apart); starting them orders of magnitude too high gives a futile
    cycle with a fast, stiff turnover that the optimiser keeps and that is wrong in every transient.
    Parameters that are not estimated, not found or not positive are left out of the result."""
    d_mean = mean_dilution(spec, data)
    if d_mean <= 0:
        return {}

    def median(name: str) -> float | None:
        col = data.columns.get(name)
        if col is not None and np.isfinite(col).sum() >= 3:
            return float(np.nanmedian(col))
        return None

    def estimated(par: Any) -> str | None:
        return par if isinstance(par, str) and par in spec.parameters and spec.parameters[par].estimate else None

    out: dict[str, float] = {}
    for term in spec.neural:
        sub = uptake_outputs(spec, term)
        if not sub:
            continue
        typ = typical_inputs(spec, term, data)
        rates = mlp_numpy(term, np.array([[typ[n][1] for n in term.inputs]]), weights)[0]
        for m in set(sub.values()):
            level = median(m)
            if level is None or level <= 0:
                continue
            flux = d_mean * level / (1 - share)        # production = outflow + consumption
            prod = [e for e in spec.interactions if e.kind == "production" and e.law == "non_growth"
                    and e.target == m and e.source and median(e.source)]
            if not prod:       # a fed substrate, or produced by a hidden state: no turnover to balance
                continue
            for e in prod:
                v = estimated(e.params.get("v"))
                if v:
                    out[v] = flux / len(prod) / float(median(e.source) or 1.0)
            ups = [e for e in spec.interactions if e.kind == "uptake" and e.law == "neural" and e.source == m
                   and e.rate and e.rate.startswith(term.id + ".")]
            for e in ups:
                g = estimated(e.params.get("yield"))
                cons = median(e.target or "") or (spec.states[e.target].x0 if e.target in spec.states else 0.0)
                r = float(rates[term.outputs.index(e.rate.split(".", 1)[1])])
                if g and cons > 0 and r > 0:
                    out[g] = share * flux / len(ups) / (r * cons)
    return {k: v for k, v in out.items() if math.isfinite(v) and v > 0}
