"""Kinetic-law library: the rate expressions behind each interaction type (sympy).

Notation: M is the concentration of the metabolite/substrate, x_s the biomass of species s.

- uptake ``monod``:          r = mu * M / (K + M)            = mu * a M / (1 + a M)       (a = 1/K)
- uptake ``shared_monod``:   r_k = mu_k * a_k M_k / (1 + sum_l a_l M_l)  (one denominator per species:
                             the multi-substrate uptake of model (1))
- uptake ``haldane``:        r = mu * M / (K + M + M^2 / Ki)
- competitive inhibitor I:   K -> K (1 + I/Ki)   (a -> a / (1 + I/Ki)) on the target's uptake edges
- noncompetitive inhibition: factor I/(I + M)  or  1/(1 + kappa M)   on the target's growth rate
- production:                non_growth v x_s;  growth_associated alpha mu_s x_s;
                             luedeking_piret (alpha mu_s + v) x_s
- glv (linear):              d x_to/dt += a x_to x_from
- mass_action:               rate = k prod_r x_r^c_r, consuming reactants, forming products
- custom:                    any whitelisted expression as a flux, with a stoichiometry

Growth of species s: mu_s = (sum of its uptake rates r_e) * (product of its inhibition factors);
uptake edge e consumes yield_e * r_e * (inhibition factors that apply to uptake) * x_s of its metabolite.
"""

from __future__ import annotations

import sympy as sp


def saturation(M: sp.Expr, *, K: sp.Expr | None = None, a: sp.Expr | None = None) -> tuple[sp.Expr, sp.Expr]:
    """Return (numerator term a*M or M/K, the same) for Monod-type saturation r = term/(1 + sum terms)."""
    if a is not None:
        return a * M, a * M
    assert K is not None
    return M / K, M / K


def monod(M: sp.Expr, mu: sp.Expr, *, K: sp.Expr | None = None, a: sp.Expr | None = None) -> sp.Expr:
    """mu M/(K+M), written as mu (M/K)/(1 + M/K) or mu a M/(1 + a M)."""
    term, _ = saturation(M, K=K, a=a)
    if a is None:
        return mu * M / (K + M)
    return mu * term / (1 + term)


def haldane(M: sp.Expr, mu: sp.Expr, K: sp.Expr, Ki: sp.Expr) -> sp.Expr:
    """Substrate inhibition: mu M / (K + M + M^2/Ki)."""
    return mu * M / (K + M + M**2 / Ki)


def noncompetitive(M: sp.Expr, *, I: sp.Expr | None = None, kappa: sp.Expr | None = None) -> sp.Expr:  # noqa: E741
    """Inhibition factor I/(I + M) or 1/(1 + kappa M)."""
    if I is not None:
        return I / (I + M)
    assert kappa is not None
    return 1 / (1 + kappa * M)


def competitive_factor(M: sp.Expr, Ki: sp.Expr) -> sp.Expr:
    """Factor by which a competitive inhibitor multiplies K (divides the affinity): 1 + M/Ki."""
    return 1 + M / Ki
