/*
 * symode_gradient.h -- loss, residuals and continuous-time gradients for symode models.
 *
 * Loss (weighted least squares = Gaussian negative log-likelihood up to a constant):
 *     r_ik = (y_k(t_i) - d_ik) / sigma_ik  for every finite data value d_ik,   L = 1/2 sum r_ik^2,
 * with y = h(t, x, p, u) the observables. Observables at sample i use the inputs of interval
 * min(i, nt-2).
 *
 * Gradients with respect to theta = [x0 (nx), p (np)]:
 *   - forward sensitivities: S = dx/dtheta solves S' = Jx S + [0 | Jp], S(t0) = [I | 0], integrated
 *     together with x (error control on both); gives the residual Jacobian for Gauss-Newton;
 *   - continuous adjoint (Chen et al. 2018, Algorithm 1): a(t) = dL/dx(t) solves a' = -Jx^T a backwards
 *     with jumps a += dL/dx(t_i) at observation times, and dL/dp = int Jp^T a dt + direct terms;
 *     x(t) comes from the states stored at every accepted forward step, interpolated by quintic
 *     Hermite polynomials ("interpolating adjoint"), or from integrating x backwards together with a,
 *     reset to the checkpoint at every sample ("backsolve");
 *   - discrete: the exact derivative of the discretised solution through the recorded steps.
 */
#ifndef SYMODE_GRADIENT_H
#define SYMODE_GRADIENT_H

#include "symode_integrator.h"
#include "symode_tape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*symode_point_fn)(void *ctx, double t, const double *x, const double *p, const double *u,
                               double *out);

typedef struct {
    symode_model m;              /* nx, np, nu, rhs, jac (Jx), ctx, nonautonomous */
    int ny;                      /* number of observables */
    symode_point_fn jac_p;       /* df/dp, column-major nx*np */
    symode_point_fn obs;         /* h, ny */
    symode_point_fn obs_jac_x;   /* dh/dx, column-major ny*nx */
    symode_point_fn obs_jac_p;   /* dh/dp, column-major ny*np */
    symode_derivs d;             /* vjp, vjp2, jvp2, jac_p for the discrete methods (symode_tape.h) */
} symode_gmodel;

enum { SYMODE_ADJ_INTERPOLATE = 0, SYMODE_ADJ_BACKSOLVE = 1 };

/* Residuals of a trajectory X (nt*nx, row-major). Writes r (nt*ny, 0 where data missing; may be NULL),
   *loss, lam (nt*nx: dL/dx(t_i); may be NULL) and adds the direct dL/dp to gp (np; may be NULL). */
int symode_residuals(const symode_gmodel *g, int nt, const double *times, const double *X, const double *p,
                     const double *u, const double *data, const double *sigma, double *r, double *loss,
                     double *lam, double *gp);

/* Forward sensitivities. X: nt*nx; S: nt blocks of nx*(nx+np), column-major per block (may be NULL
   only if nt*nx*(nx+np) is too large: then returns SYMODE_ERR_ARGS). */
int symode_forward_sens(const symode_gmodel *g, const symode_options *opt, int nt, const double *times,
                        const double *x0, const double *p, const double *u, double *X, double *S,
                        symode_stats *stats);

/* Loss and gradient by forward sensitivities; optionally the residual Jacobian
   rjac ((nt*ny) x (nx+np), row-major, rows of missing data zero) and residuals r (nt*ny). */
int symode_loss_forward(const symode_gmodel *g, const symode_options *opt, int nt, const double *times,
                        const double *x0, const double *p, const double *u, const double *data,
                        const double *sigma, double *loss, double *grad, double *rjac, double *r,
                        symode_stats *stats);

/* Loss and gradient (nx+np) by the continuous adjoint. variant: SYMODE_ADJ_INTERPOLATE (x(t) by quintic
   Hermite interpolation between the forward solver's accepted steps) or SYMODE_ADJ_BACKSOLVE. In AUTO mode
   each interval's adjoint uses the method the forward pass used there (the adjoint is as stiff as x). */
int symode_loss_adjoint(const symode_gmodel *g, const symode_options *opt, int variant, int nt,
                        const double *times, const double *x0, const double *p, const double *u,
                        const double *data, const double *sigma, double *loss, double *grad,
                        symode_stats *stats);

/* Loss and the exact gradient of the DISCRETISED solution: the forward solve is recorded on a tape and
   differentiated through the integrator's own steps (symode_tape.h): reverse mode (discrete adjoint), or
   forward mode when the residual Jacobian rjac is requested. Needs g->d. */
int symode_loss_discrete(const symode_gmodel *g, const symode_options *opt, int nt, const double *times,
                         const double *x0, const double *p, const double *u, const double *data,
                         const double *sigma, double *loss, double *grad, double *rjac, double *r,
                         symode_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
