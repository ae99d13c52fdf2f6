/*
 * symode_model.h -- the entry points of a compiled symode model library.
 *
 * Defined by the generated wrapper (model.c, rendered from symode/codegen/templates/model.c) around the
 * CasADi-generated model functions; called by symode through ctypes (symode/solve/backend.py) and by
 * the standalone solver's API. Every point function takes one interval input vector u (see
 * symode/codegen/layout.py) and returns 0, or nonzero when the model evaluation failed.
 *
 * Libraries are compiled with -fvisibility=hidden: these functions are the only symbols a model
 * library exports (SYMODE_API). The standalone solver defines SYMODE_API empty, so that only its
 * prefixed API is exported.
 */
#ifndef SYMODE_MODEL_H
#define SYMODE_MODEL_H

#include "symode_integrator.h"

#ifndef SYMODE_API
#if defined(__GNUC__) || defined(__clang__)
#define SYMODE_API __attribute__((visibility("default")))
#else
#define SYMODE_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* dims = {nx, np, nU (interval vector length), ny} */
SYMODE_API void symode_model_dims(int *dims);

/* f, df/dx, df/dp, h, dh/dx, dh/dp at one point (matrices column-major, dense) */
SYMODE_API int symode_rhs(double t, const double *x, const double *p, const double *u, double *out);
SYMODE_API int symode_jac_x(double t, const double *x, const double *p, const double *u, double *out);
SYMODE_API int symode_jac_p(double t, const double *x, const double *p, const double *u, double *out);
SYMODE_API int symode_obs(double t, const double *x, const double *p, const double *u, double *out);
SYMODE_API int symode_obs_jac_x(double t, const double *x, const double *p, const double *u, double *out);
SYMODE_API int symode_obs_jac_p(double t, const double *x, const double *p, const double *u, double *out);

/* integration over the sample times (symode_integrator.h) and the observables along a trajectory */
SYMODE_API int symode_simulate(const symode_options *opt, int nt, const double *times, const double *x0,
                               const double *p, const double *u, double *xout, symode_stats *stats);
SYMODE_API int symode_observe(int nt, const double *times, const double *X, const double *p, const double *u,
                              double *Y);

/* states and sensitivities dx/d[x0, p]: continuous forward (sens) or through the recorded steps */
SYMODE_API int symode_sens(const symode_options *opt, int nt, const double *times, const double *x0,
                           const double *p, const double *u, double *X, double *S, symode_stats *stats);
SYMODE_API int symode_sens_discrete(const symode_options *opt, int nt, const double *times, const double *x0,
                                    const double *p, const double *u, double *X, double *S,
                                    symode_stats *stats);

/* a recorded forward solve (symode_tape.h), differentiated as often as wanted: symode_record integrates
   like symode_simulate and returns the tape (NULL if out of memory; *status = the integrator's code);
   symode_record_adjoint: gx0 = sum_i lam_i . dx(t_i)/dx0, gp = sum_i lam_i . dx(t_i)/dp (lam nt*nx
   row-major, p and u those of the recording); symode_record_sens: S as symode_sens_discrete;
   symode_record_free releases the tape. */
SYMODE_API void *symode_record(const symode_options *opt, int nt, const double *times, const double *x0,
                               const double *p, const double *u, double *X, symode_stats *stats, int *status);
SYMODE_API int symode_record_adjoint(const void *tape, const double *p, const double *u, const double *lam,
                                     double *gx0, double *gp);
SYMODE_API int symode_record_sens(const void *tape, const double *p, const double *u, double *S);
SYMODE_API void symode_record_free(void *tape);
/* seeded forward sensitivities (symode_forward.h): G (nt blocks of nx x k, row-major) = S D for the seed D
   ((nx + np) x k, row-major); symode_sens_seeded records and differentiates in one call (X as
   symode_simulate). symode_record_sens_dense: S as symode_record_sens by the dense reference
   implementation (tests and benchmarks). */
SYMODE_API int symode_record_sens_seeded(const void *tape, const double *p, const double *u, int k, const double *D,
                                         double *G);
SYMODE_API int symode_sens_seeded(const symode_options *opt, int nt, const double *times, const double *x0,
                                  const double *p, const double *u, int k, const double *D, double *X, double *G,
                                  symode_stats *stats);
SYMODE_API int symode_record_sens_dense(const void *tape, const double *p, const double *u, double *S);

/* loss, residuals and gradients (symode_gradient.h) */
SYMODE_API int symode_residual_loss(int nt, const double *times, const double *X, const double *p,
                                    const double *u, const double *data, const double *sigma, double *r,
                                    double *loss, double *lam, double *gp);
SYMODE_API int symode_grad_forward(const symode_options *opt, int nt, const double *times, const double *x0,
                                   const double *p, const double *u, const double *data, const double *sigma,
                                   double *loss, double *grad, double *rjac, double *r, symode_stats *stats);
SYMODE_API int symode_grad_adjoint(const symode_options *opt, int variant, int nt, const double *times,
                                   const double *x0, const double *p, const double *u, const double *data,
                                   const double *sigma, double *loss, double *grad, symode_stats *stats);
SYMODE_API int symode_grad_discrete(const symode_options *opt, int nt, const double *times, const double *x0,
                                    const double *p, const double *u, const double *data, const double *sigma,
                                    double *loss, double *grad, double *rjac, double *r, symode_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* SYMODE_MODEL_H */
