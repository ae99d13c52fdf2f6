/*
 * symode_forward.h -- seeded discrete forward sensitivities over a recorded tape (symode_tape.h), with
 * the model's sparse Jacobians.
 *
 * A caller that needs G(t_i) = S(t_i) D, S = d x(t_i) / d[x0, p] (nx x (nx + np)) and D a seed
 * ((nx + np) x k), propagates only the k columns of G: G(t_0) = D_x (the first nx rows of D), and through
 * every recorded step the same DOPRI5 / RODAS4 stage formulas as symode_tape_forward with the
 * parameter directions D_p (the last np rows of D) in place of [0 | I]:
 *   DOPRI5: dY_j = G + h sum_{l<j} a_jl dK_l,  dK_j = Jx(T_j, Y_j) dY_j + Jp(T_j, Y_j) D_p,
 *           G_new = G + h sum_j b_j dK_j;
 *   RODAS4: dk_i = E^{-1} (dr_i + [d(Jx k_i)/dx G + d(Jx k_i)/dp D_p]),
 *           dr_i = Jx(T_i, Y_i) dY_i + Jp(T_i, Y_i) D_p + sum_{j<i} (c_ij / h) dk_j (+ h d_i df_t),
 *           G_new = G + sum_j a_6j dk_j + dk_6.
 * The cost is proportional to k instead of nx + np, and with symode_sparse_derivs (d->sparse) every
 * product runs over the nonzeros of the Jacobians only (first order: Jx, Jp at each stage; second
 * order: d(Jx v)/dx and d(Jx v)/dp, whose nonzeros lie within those of Jx and Jp). Without it the
 * Jacobians are dense (m->jac / d->jac_p, or rows from d->vjp) and the second-order term comes from
 * d->vjp2 (nx calls per stage) or d->jvp2 (k calls per stage), as in symode_tape_forward_dense.
 *
 * Matrices here are row-major: G (nx x k) holds G[i * k + c] = d x_i / d(direction c).
 */
#ifndef SYMODE_FORWARD_H
#define SYMODE_FORWARD_H

#include "symode_tape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The nonzeros of df/dx (jx) and df/dp (jp) at one point, in the compressed-column order of the
   patterns SYMODE_SPARSE_JX and SYMODE_SPARSE_JP. */
typedef int (*symode_jac_sparse_fn)(void *ctx, double t, const double *x, const double *p, const double *u,
                                    double *jx, double *jp);
/* The nonzeros of d(Jx v)/dx (hx, pattern SYMODE_SPARSE_HX) and d(Jx v)/dp (hp, SYMODE_SPARSE_HP). */
typedef int (*symode_hes_sparse_fn)(void *ctx, double t, const double *x, const double *p, const double *u,
                                    const double *v, double *hx, double *hp);
/* The pattern `which` (SYMODE_SPARSE_*) as [nrow, ncol, colind[0 .. ncol], row[0 .. nnz - 1]] (column j
   has the rows row[colind[j] .. colind[j+1] - 1]) written to out; returns the number of ints (out NULL:
   only returns it), or -1 for an unknown pattern. */
typedef int (*symode_sparsity_fn)(int which, int *out);

enum { SYMODE_SPARSE_JX = 0, SYMODE_SPARSE_JP = 1, SYMODE_SPARSE_HX = 2, SYMODE_SPARSE_HP = 3 };

typedef struct symode_sparse_derivs {
    symode_jac_sparse_fn jac;
    symode_hes_sparse_fn hes; /* needed when the tape contains RODAS4 steps */
    symode_sparsity_fn sparsity;
} symode_sparse_derivs;

/* G_out (nt blocks of nx x k, row-major) = S(t_i) D for the seed D ((nx + np) x k, row-major), through
   the recorded steps; k >= 1. Requirements as symode_tape_forward. Returns 0 or a negative SYMODE_ERR_*
   code. */
int symode_tape_forward_seeded(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                               const double *p, const double *u, int k, const double *D, double *G_out);

/* The reference implementation of symode_tape_forward (dense products over all nx + np columns, d->sparse
   ignored): the same derivative, for tests and benchmarks. */
int symode_tape_forward_dense(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                              const double *p, const double *u, double *S_out);

#ifdef __cplusplus
}
#endif

#endif /* SYMODE_FORWARD_H */
