/*
 * symode_tape.h -- discrete adjoint and discrete forward sensitivities of symode_integrator.
 *
 * symode_integrate_record() runs symode_integrate() and records every ACCEPTED step (interval,
 * method, t, h, step end, interval end, state at the step start) on a tape. The tape functions then
 * differentiate exactly the map the integrator computed: the same DOPRI5 / RODAS4 stage formulas
 * (same tableau, same clipped stage times, same f(t,y) and Jacobian evaluation points, the same
 * finite-difference df/dt of non-autonomous models with the same increment), with the step sizes
 * (and all step-control decisions) treated as constants. The results are the exact derivatives
 * of the discrete solution, up to round-off.
 *
 *  - symode_tape_adjoint: reverse mode, cost ~ (a few) x one forward solve, independent of np.
 *  - symode_tape_forward: forward mode, all nx+np directions at once (symode_forward.h: any seeded
 *    directions).
 *  - symode_tape_replay:  re-runs the recorded step sequence with other x0 / p (no step-size
 *    control) -- the discrete map that the two functions above differentiate. With the recorded
 *    x0 and p it reproduces the integrator's output (bit-identically with the same compiler flags).
 *
 * Requirements on the model / derivative callbacks:
 *  - adjoint: d->vjp always; d->vjp2s or d->vjp2 if the tape contains RODAS4 steps.
 *  - forward: d->sparse (symode_forward.h) if set; otherwise Jx = m->jac if set, and Jp = d->jac_p if
 *    set; if either is missing, both are built row by row from d->vjp (exact, nx vjp calls). d->vjp2
 *    (used when present: nx calls per stage) or d->jvp2 (one call per direction and stage) if the tape
 *    contains RODAS4 steps.
 *  - RODAS4 steps require m->jac != NULL at recording time and at differentiation time: the
 *    integrator's finite-difference Jacobian is not differentiated (SYMODE_ERR_ARGS otherwise).
 *  The callbacks must be consistent with m->rhs / m->jac (same ctx, same u convention).
 *
 * Everything is re-entrant; a tape may be shared read-only between threads once recorded.
 */
#ifndef SYMODE_TAPE_H
#define SYMODE_TAPE_H

#include "symode_integrator.h"

#ifdef __cplusplus
extern "C" {
#endif

/* df/dp, column-major nx*np: Jp[i + j*nx] = dfi/dpj */
typedef int (*symode_jacp_fn)(void *ctx, double t, const double *x, const double *p,
                              const double *u, double *Jp);
/* out_x = Jx^T w (nx), out_p = Jp^T w (np) */
typedef int (*symode_vjp_fn)(void *ctx, double t, const double *x, const double *p,
                             const double *u, const double *w, double *out_x, double *out_p);
/* second order: out_x = (d/dx (Jx v))^T w (nx), out_p = (d/dp (Jx v))^T w (np); v, w in R^nx */
typedef int (*symode_vjp2_fn)(void *ctx, double t, const double *x, const double *p,
                              const double *u, const double *v, const double *w, double *out_x,
                              double *out_p);
/* forward second order: out = (d/dx (Jx v)) dx + (d/dp (Jx v)) dp (nx); dp may be NULL (= 0) */
typedef int (*symode_jvp2_fn)(void *ctx, double t, const double *x, const double *p,
                              const double *u, const double *v, const double *dx,
                              const double *dp, double *out);

/* vjp2 summed over the six stages of a RODAS4 step: out_x = sum_j (d/dx (Jx v_j))^T w_j (nx), out_p likewise
   (np); v_j, w_j = column j of V, W (nx x 6, column-major). One call per step instead of six. */
typedef int (*symode_vjp2s_fn)(void *ctx, double t, const double *x, const double *p,
                               const double *u, const double *V, const double *W, double *out_x,
                               double *out_p);

typedef struct {
    symode_jacp_fn jac_p;
    symode_vjp_fn vjp;
    symode_vjp2_fn vjp2;
    symode_jvp2_fn jvp2;
    symode_vjp2s_fn vjp2s; /* optional (NULL: six vjp2 calls) */
    /* optional: the sparse Jacobians of the forward sensitivities (symode_forward.h; NULL: dense) */
    const struct symode_sparse_derivs *sparse;
} symode_derivs;

typedef struct symode_tape symode_tape; /* opaque; owns its memory (grows as needed) */

symode_tape *symode_tape_new(void);
void symode_tape_free(symode_tape *tape);

/* Same as symode_integrate, but records every accepted step on the tape (cleared first).
   Returns the integrator's code; the tape is usable by the functions below only if that is 0
   (SYMODE_ERR_NOMEM if the tape could not grow). */
int symode_integrate_record(const symode_model *m, const symode_options *opt, int nt,
                            const double *times, const double *x0, const double *p,
                            const double *u, double *xout, symode_stats *stats,
                            symode_tape *tape);

/* Memory for the steps' stage values (bytes, default 256 MiB), set before recording. The tape keeps
   each step's stage values as the integrator computed them (DOPRI5: 6 nx; RODAS4: 6 nx + nx^2 with the
   LU factors of E) while they fit in this limit, so that the derivatives need not evaluate the step
   again; steps beyond it (or all with 0) are replayed (the same numbers, recomputed). */
void symode_tape_set_stage_limit(symode_tape *tape, size_t bytes);

/* Number of recorded accepted steps, how many of them are RODAS4 steps, and how many have their stage
   values stored. (-1 if tape NULL) */
long symode_tape_nsteps(const symode_tape *tape);
long symode_tape_nstiff(const symode_tape *tape);
long symode_tape_nstored(const symode_tape *tape);
/* nx and nt of the recording (0 for an empty/invalid tape). */
int symode_tape_nx(const symode_tape *tape);
int symode_tape_nt(const symode_tape *tape);

/* Discrete adjoint. lam[i*nx + k] = dL/dx_k(times[i]) (row-major nt x nx, including row 0 for
   an observation at t0). Outputs grad_x0 (nx) = dL/dx0 and grad_p (np) = dL/dp (may be NULL if
   np == 0), through the recorded steps. p and u must be those of the recording (u: inputs per
   interval as in symode_integrate). Returns 0 or a negative SYMODE_ERR_* code. */
int symode_tape_adjoint(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                        const double *p, const double *u, const double *lam, double *grad_x0,
                        double *grad_p);

/* Discrete forward sensitivities: per sample a column-major nx x (nx+np) block,
   S_out[(size_t)i*nx*(nx+np) + k + j*nx] = d x_k(times[i]) / d theta_j, theta = [x0, p]. */
int symode_tape_forward(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                        const double *p, const double *u, double *S_out);

/* Replays the recorded steps (same methods, t, h, stage times) from x0 with parameters p and
   writes the states at the sample times to xout (nt*nx, row-major, row 0 = x0). No error
   control, no rejections. This is the discrete map the adjoint/forward functions differentiate.
   Returns 0, SYMODE_ERR_RHS, SYMODE_ERR_SINGULAR, SYMODE_ERR_NOMEM or SYMODE_ERR_ARGS. */
int symode_tape_replay(const symode_tape *tape, const symode_model *m, const double *x0,
                       const double *p, const double *u, double *xout);

#ifdef __cplusplus
}
#endif

#endif /* SYMODE_TAPE_H */
