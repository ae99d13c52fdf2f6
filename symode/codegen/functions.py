"""The CasADi Functions of a model library: f, df/dx, df/dp, the observables h and their Jacobians, and
the products the gradient code needs (vector-Jacobian and second-order), all of (t, x, p, U).

Mechanistic models: one CSE pass over the sympy f, Jacobians and observables, translated to SX
(:mod:`symode.codegen.translate`). Neural terms: small networks are expanded into the SX expressions
like any other rate law and differentiated by CasADi; wide ones (more than
:data:`~symode.codegen.layout.NEURAL_MX_MIN_WEIGHTS` weights) are built with CasADi MX matrix operations
around an SX function of the mechanistic part (:func:`neural_casadi_functions_mx`), so that the C stays
small (1 MB and a 5-7 s build at 10k weights, where SX wrote 22 MB of C that gcc did not finish in 27
minutes).
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from symode.codegen.layout import Layout, neural_codegen
from symode.codegen.translate import to_casadi_cse
from symode.errors import SymodeError

#: Stages of the Rosenbrock method (RODAS4) whose second-order products ``sym_vjp2s`` sums.
RODAS_STAGES = 6


def casadi_symbols(sym: Any, layout: Layout, kind: Any = None) -> tuple[Any, Any, Any, Any, dict[sp.Symbol, Any]]:
    """CasADi arguments (t, x, p, U) and the map from the sympy symbols to them; a linearly
    interpolated input is u_k + s_k (t - t_start) from the interval vector U. ``kind``: ca.SX (default)
    or ca.MX."""
    import casadi as ca

    kind = kind or ca.SX
    nu = len(layout.inputs)
    t = kind.sym("t")
    x = kind.sym("x", len(layout.states))
    p = kind.sym("p", len(layout.parameters))
    U = kind.sym("U", layout.nu_interval)
    mapping: dict[sp.Symbol, Any] = {sym.t: t}
    mapping.update({s: x[i] for i, s in enumerate(sym.x)})
    mapping.update({s: p[i] for i, s in enumerate(sym.p)})
    for k, s in enumerate(sym.u):
        if s.name in layout.linear_inputs:
            j = layout.linear_inputs.index(s.name)
            mapping[s] = U[k] + U[nu + j] * (t - U[layout.nu_interval - 1])
        else:
            mapping[s] = U[k]
    return t, x, p, U, mapping


def model_functions(t: Any, x: Any, p: Any, U: Any, f: Any, Jx: Any, Jp: Any, h: Any, Hx: Any,
                     Hp: Any, sparse_forward: bool = False) -> list[Any]:
    """The library's CasADi Functions of (t, x, p, U). Products for adjoints and second-order terms use
    CasADi's AD on f (2-3x cheaper than multiplying out the Jacobians). ``sparse_forward``: with the sparse
    Jacobians of the forward sensitivities (``sym_jac_sp``, ``sym_hes_sp``; the wrapper uses them when
    they exist). Mechanistic models only: a neural term's Jacobians are dense in its inputs and weights,
    and the functions would double the C of a wide network."""
    import casadi as ca

    nx = x.numel()
    kind = ca.MX if isinstance(x, ca.MX) else ca.SX
    v = kind.sym("v", nx)
    w = kind.sym("w", nx)
    V = kind.sym("V", nx, RODAS_STAGES)
    W = kind.sym("W", nx, RODAS_STAGES)
    Jxv = ca.jtimes(f, x, v)
    wJxv = ca.dot(w, Jxv)
    WJxV = ca.dot(W, ca.jtimes(f, x, V))
    vjp_x, vjp_p = ca.jtimes(f, x, w, True), ca.jtimes(f, p, w, True)
    args = [t, x, p, U]
    names = ["t", "x", "p", "U"]
    # options of the MX functions (SX: none, so that their code is unchanged)
    opts = [{"cse": True}] if kind is ca.MX else []

    def F(*fargs: Any) -> Any:
        return ca.Function(*fargs, *opts)

    return [
        F("sym_rhs", args, [ca.densify(f)], names, ["f"]),   # dense: callers read nx values
        F("sym_jac_x", args, [ca.densify(Jx)], names, ["J"]),
        F("sym_jac_p", args, [ca.densify(Jp)], names, ["J"]),
        # vector-Jacobian products for adjoints: Jx^T w, Jp^T w
        F("sym_vjp", [*args, w], [ca.densify(vjp_x), ca.densify(vjp_p)], [*names, "w"], ["vx", "vp"]),
        # second order (discrete adjoint through Rosenbrock steps): (d/dx (Jx v))^T w, (d/dp (Jx v))^T w
        F("sym_vjp2", [*args, v, w], [ca.densify(ca.gradient(wJxv, x)), ca.densify(ca.gradient(wJxv, p))],
          [*names, "v", "w"], ["vx", "vp"]),
        # the same summed over the stages of a Rosenbrock step (v_j, w_j = columns of V, W): one call per
        # step, the model's nonlinear terms (pow, exp, ...) evaluated once instead of once per stage
        F("sym_vjp2s", [*args, V, W], [ca.densify(ca.gradient(WJxV, x)), ca.densify(ca.gradient(WJxV, p))],
          [*names, "V", "W"], ["vx", "vp"]),
        F("sym_obs", args, [ca.densify(h)], names, ["y"]),
        F("sym_obs_jac_x", args, [ca.densify(Hx)], names, ["J"]),
        F("sym_obs_jac_p", args, [ca.densify(Hp)], names, ["J"]),
    ] + ([
        # forward sensitivities (symode_forward.h): the nonzeros of Jx, Jp and of the second-order d(Jx v)/dx,
        # d(Jx v)/dp (whose nonzeros lie within Jx's and Jp's), so that products with k directions cost
        # nnz k instead of nx^2 k
        F("sym_jac_sp", args, [Jx, Jp], names, ["jx", "jp"]),
        F("sym_hes_sp", [*args, v], [ca.jacobian(Jxv, x), ca.jacobian(Jxv, p)], [*names, "v"], ["hx", "hp"]),
    ] if sparse_forward else [])


def casadi_functions(sym: Any, layout: Layout) -> list[Any]:
    """CasADi Functions (t, x, p, U) -> f, df/dx, df/dp, h, dh/dx, dh/dp (Jacobians dense)."""
    import casadi as ca

    if getattr(sym, "neural", None):
        return neural_casadi_functions(sym, layout)
    t, x, p, U, mapping = casadi_symbols(sym, layout)

    # One CSE pass over f, df/dx, df/dp, h, dh/dx, dh/dp (column-major entries), then split back.
    mats = [sym.f, sym.jac_x, sym.jac_p, sym.h, sym.h_jac_x, sym.h_jac_p]
    flat = [e for m in mats for e in m.T]
    translated = to_casadi_cse(flat, mapping)

    def take(m: sp.Matrix, start: int) -> tuple[Any, int]:
        """The translated entries as a sparse SX matrix: symbolic zeros stay structural zeros, so that
        products such as Jp^T w only touch the nonzeros."""
        rows, cols = m.shape
        out = ca.SX(rows, cols)
        for idx, e in enumerate(m.T):
            if e != 0:
                out[idx % rows, idx // rows] = translated[start + idx]
        return out, start + rows * cols

    pos = 0
    f, pos = take(sym.f, pos)
    Jx, pos = take(sym.jac_x, pos)
    Jp, pos = take(sym.jac_p, pos)
    h, pos = take(sym.h, pos)
    Hx, pos = take(sym.h_jac_x, pos)
    Hp, pos = take(sym.h_jac_p, pos)
    return model_functions(t, x, p, U, f, Jx, Jp, h, Hx, Hp, sparse_forward=True)


def neural_casadi_functions(sym: Any, layout: Layout, mode: str | None = None) -> list[Any]:
    """:func:`casadi_functions` for models with neural terms: ``mode`` "sx" (:func:`neural_casadi_functions_sx`)
    or "mx" (:func:`neural_casadi_functions_mx`); by default as :func:`neural_codegen` chooses from the
    number of weights. Same functions, names and signatures either way."""
    mode = mode or neural_codegen(sym.spec)
    if mode == "mx":
        return neural_casadi_functions_mx(sym, layout)
    if mode == "sx":
        return neural_casadi_functions_sx(sym, layout)
    raise ValueError(f"unknown neural code generation mode {mode!r}")


def neural_casadi_functions_sx(sym: Any, layout: Layout) -> list[Any]:
    """Neural models in CasADi SX: the placeholders of the neural outputs in the sympy f are replaced by
    the MLPs built in SX (:func:`symode.symbolic.mlp.mlp_casadi`), and every derivative (df/dx, df/dp, the
    vector-Jacobian and second-order products, dh/dx, dh/dp) comes from CasADi's AD instead of sympy.
    Everything is scalar-expanded: fast code for small networks, but its size grows with the square of
    the width."""
    import casadi as ca

    from symode.symbolic.mlp import mlp_casadi

    t, x, p, U, mapping = casadi_symbols(sym, layout)
    by_name = {s.name: v for s, v in mapping.items()}
    pindex = {n: i for i, n in enumerate(layout.parameters)}
    for term in sym.spec.neural:
        outs = mlp_casadi(term, [by_name[n] for n in term.inputs], lambda n: p[pindex[n]])
        for o, val in zip(term.outputs, outs, strict=True):
            mapping[sym.neural[term.ref(o)]] = val
    f = ca.vertcat(*to_casadi_cse(list(sym.f), mapping)) if len(sym.f) else ca.SX.zeros(0, 1)
    h = ca.vertcat(*to_casadi_cse(list(sym.h), mapping)) if len(sym.h) else ca.SX.zeros(0, 1)
    Jx, Jp = ca.jacobian(f, x), ca.jacobian(f, p)
    Hx, Hp = ca.jacobian(h, x), ca.jacobian(h, p)
    return model_functions(t, x, p, U, f, Jx, Jp, h, Hx, Hp)


def neural_casadi_functions_mx(sym: Any, layout: Layout) -> list[Any]:
    """Neural models with CasADi MX for the networks.

    The mechanistic part of f (the sympy f with the neural outputs as placeholder arguments ``r``) is an
    SX Function ``sym_mech(t, x, p, U, r)``; the MLPs are CasADi MX matrix expressions (``mtimes`` on
    weight matrices sliced from p), so the generated C evaluates each layer as a loop and its size does
    not grow with the width (scalar-expanding SX would write every weight's term, and every derivative's,
    into the C: 22 MB for 10k weights). Every derivative (df/dx, df/dp, the vector-Jacobian and
    second-order products) comes from CasADi's AD on the MX graph; the observables (which cannot reference
    neural outputs) stay SX as for other models."""
    import casadi as ca

    spec = sym.spec
    nx = len(layout.states)
    refs = [term.ref(o) for term in spec.neural for o in term.outputs]
    # mechanistic part (SX) with the neural outputs as arguments
    t, x, p, U, mapping = casadi_symbols(sym, layout)
    r = ca.SX.sym("r", len(refs))
    for k, ref in enumerate(refs):
        mapping[sym.neural[ref]] = r[k]
    if any(s in e.free_symbols for e in sym.h for s in sym.neural.values()):
        raise SymodeError("observables of a neural model must not depend on neural outputs")
    fh = to_casadi_cse(list(sym.f) + list(sym.h), mapping)
    f_sx = ca.vertcat(*fh[:nx]) if nx else ca.SX.zeros(0, 1)
    h_sx = ca.vertcat(*fh[nx:]) if len(sym.h) else ca.SX.zeros(0, 1)

    def used(e: Any) -> list[int]:
        """Indices of the parameters e depends on: the mechanistic functions take only those (with all of p,
        their derivative functions would write dense adjoints over every weight)."""
        return sorted(set(ca.jacobian_sparsity(e, p).get_col())) if e.numel() else []

    pf, ph = used(f_sx), used(h_sx)
    mech = ca.Function("sym_mech", [t, x, p[pf], U, r], [f_sx], ["t", "x", "p", "U", "r"], ["f"])
    obs_fn = ca.Function("sym_obs_sx", [t, x, p[ph], U], [h_sx], ["t", "x", "p", "U"], ["y"])

    # MX: the MLPs, then the mechanistic part called on their outputs
    tm, xm, pm, Um, mapping_mx = casadi_symbols(sym, layout, ca.MX)
    by_name = {s.name: v for s, v in mapping_mx.items()}
    pindex = {n: i for i, n in enumerate(layout.parameters)}
    outs: list[Any] = []
    for term in spec.neural:
        outs += _mlp_mx(term, [by_name[n] for n in term.inputs], pm, pindex)
    f = mech(tm, xm, pm[pf], Um, ca.vertcat(*outs))
    h = obs_fn(tm, xm, pm[ph], Um)
    return model_functions(tm, xm, pm, Um, f, ca.jacobian(f, xm), ca.jacobian(f, pm), h, ca.jacobian(h, xm),
                            ca.jacobian(h, pm))


def _mlp_mx(term: Any, inputs: list[Any], p: Any, pindex: dict[str, int]) -> list[Any]:
    """The outputs of a neural term as CasADi MX expressions of its inputs and of the weight vector p
    (the same network as :func:`symode.symbolic.mlp.mlp_casadi` / :func:`symode.symbolic.mlp.mlp_numpy`)."""
    import casadi as ca

    from symode.symbolic.mlp import act_casadi

    h = ca.vertcat(*[inp / term.input_scale.get(n, 1.0) for n, inp in zip(term.inputs, inputs, strict=True)])
    layers = term.layers()
    for k, (W, b) in enumerate(layers):
        n_out, n_in = len(W), len(W[0])
        # W row-major (out i, in j) as an (n_in x n_out) column-major matrix Wt = W^T; z^T = h^T Wt
        Wt = ca.reshape(p[[pindex[n] for row in W for n in row]], n_in, n_out)
        bv = p[[pindex[n] for n in b]]
        z = ca.mtimes(h.T, Wt).T + bv
        h = act_casadi(term.activation if k < len(layers) - 1 else term.output_activation, z)
    return [h[i] * term.output_scale.get(o, 1.0) for i, o in enumerate(term.outputs)]
