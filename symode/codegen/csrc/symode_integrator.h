/*
 * symode_integrator.h -- re-entrant C99 ODE integrator for symode.
 *
 * Methods:
 *   - SYMODE_EXPLICIT: Dormand-Prince 5(4) (DOPRI5), FSAL, PI step-size control,
 *     Hairer's stiffness detection.
 *   - SYMODE_STIFF:    RODAS4 Rosenbrock method, order 4(3), L-stable, stiffly accurate,
 *     dense Jacobian (user supplied or forward differences), dense LU with partial pivoting.
 *   - SYMODE_AUTO:     starts explicit, switches to RODAS4 when stiffness is detected and back
 *     when the Rosenbrock steps indicate non-stiffness (with hysteresis / back-off).
 *
 * The integrator is re-entrant: no global mutable state. symode_integrate() allocates its
 * workspace with malloc and frees it on every path; symode_integrate_ws() takes a caller buffer.
 */
#ifndef SYMODE_INTEGRATOR_H
#define SYMODE_INTEGRATOR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* rhs: xdot = f(t, x, p, u); returns 0 on success (nonzero -> SYMODE_ERR_RHS). */
typedef int (*symode_rhs_fn)(void *ctx, double t, const double *x, const double *p,
                             const double *u, double *xdot);
/* jac: dense df/dx, column-major nx*nx: J[i + j*nx] = dfi/dxj; returns 0 on success. */
typedef int (*symode_jac_fn)(void *ctx, double t, const double *x, const double *p,
                             const double *u, double *J);

typedef struct {
    int nx;                 /* number of states */
    int np;                 /* length of p (passed through untouched) */
    int nu;                 /* inputs per interval */
    symode_rhs_fn rhs;
    symode_jac_fn jac;      /* may be NULL: then use a finite-difference Jacobian */
    void *ctx;
    int nonautonomous;      /* nonzero: f depends explicitly on t; the stiff method then
                               estimates df/dt by a finite difference */
} symode_model;

enum { SYMODE_AUTO = 0, SYMODE_EXPLICIT = 1, SYMODE_STIFF = 2 };

#define SYMODE_OK             0
#define SYMODE_ERR_MAXSTEPS  (-1)  /* step budget exhausted */
#define SYMODE_ERR_HMIN      (-2)  /* step size underflow */
#define SYMODE_ERR_NONFINITE (-3)  /* NaN/Inf from rhs or state */
#define SYMODE_ERR_SINGULAR  (-4)  /* iteration matrix repeatedly singular */
#define SYMODE_ERR_RHS       (-5)  /* rhs or jac returned nonzero */
#define SYMODE_ERR_ARGS      (-6)  /* invalid arguments */
#define SYMODE_ERR_NOMEM     (-7)  /* malloc failed */

typedef struct {
    double rtol, atol;      /* mixed error control per component:
                               err_i / (atol + rtol*max(|x_i_old|,|x_i_new|)), RMS norm.
                               rtol is clamped below at 1e-14. */
    double h0;              /* initial step (<=0: automatic, Hairer's heuristic) */
    double hmax;            /* <=0: no limit */
    long max_steps;         /* total accepted+rejected step budget for the whole call,
                               <=0: default 10^7 */
    int method;             /* SYMODE_AUTO / SYMODE_EXPLICIT / SYMODE_STIFF */
} symode_options;

typedef struct {
    long n_steps, n_accepted, n_rejected, n_rhs, n_jac, n_lu;
    int method_used;        /* method active at the end: SYMODE_EXPLICIT or SYMODE_STIFF */
    int n_switches;         /* auto-mode switches between explicit and stiff */
    int fail_interval;      /* on failure: index i of interval [times[i], times[i+1]] that failed,
                               else -1 */
    double fail_t;          /* time at failure */
} symode_stats;

/* Fill *opt with defaults: rtol 1e-6, atol 1e-9, automatic h0, no hmax, 10^7 steps, AUTO. */
void symode_default_options(symode_options *opt);

/* Integrate over consecutive intervals [times[i], times[i+1]], i = 0..nt-2 (times strictly
   increasing). Inputs u are constant on each interval: interval i uses u + i*nu. The state is
   continuous across breakpoints; the integrator restarts at each breakpoint (no step crosses a
   breakpoint, FSAL/stage data is discarded, the last step size is reused as a hint).
   xout has nt*nx doubles, row-major: xout[i*nx + k] = x_k(times[i]); row 0 = x0.
   opt may be NULL (defaults), stats may be NULL.
   Returns 0 on success or a negative SYMODE_ERR_* code. On failure rows 0..fail_interval are
   valid and the remaining rows are filled with NaN. */
int symode_integrate(const symode_model *m, const symode_options *opt, int nt, const double *times,
                     const double *x0, const double *p, const double *u, double *xout,
                     symode_stats *stats);

/* Workspace size in bytes needed by symode_integrate_ws for nx states (any method). */
size_t symode_workspace_size(int nx);

/* The same for options with the given method: SYMODE_EXPLICIT needs no n x n matrices (what makes
   explicit forward sensitivities of large augmented systems possible); other methods as above. */
size_t symode_workspace_size_method(int nx, int method);

/* Same as symode_integrate, but uses the caller's buffer `work` of at least
   symode_workspace_size(nx) bytes (suitably aligned for double, e.g. from malloc). */
int symode_integrate_ws(const symode_model *m, const symode_options *opt, int nt,
                        const double *times, const double *x0, const double *p, const double *u,
                        double *xout, symode_stats *stats, void *work);

/* Step recording hook (used by symode_tape_record.c for discrete adjoints / sensitivities).
   Called once per ACCEPTED step, after the step was accepted and before any method switch:
     interval: index i of [times[i], times[i+1]];  method: SYMODE_EXPLICIT or SYMODE_STIFF used
     for this step;  t: step start;  h: step size used in the stage formulas;  tend: step end
     (exactly times[i+1] for the last step of an interval);  t1: interval end;
     x: state at the step start (n values, valid only during the call).
   For SYMODE_STIFF steps the Jacobian and f(t, x) used are always those at (t, x): the integrator
   only reuses a Jacobian after rejections, where the step start does not change.
   The step's stage values (n values each, valid only during the call): SYMODE_EXPLICIT: k[j] =
   f(T_j, Y_j), j = 0..5 (DOPRI5's K_1..K_6; lu = NULL); SYMODE_STIFF: k[j] = the Rosenbrock
   increments u_1..u_6 and lu the factors of E = I/(h gamma) - J.
   A nonzero return aborts the integration with SYMODE_ERR_NOMEM. */

/* LU factors P E = L U of a Rosenbrock iteration matrix E (n x n), compressed (symode_methods.h:
   lu_factor, lu_compress): the nonzeros of L (strictly below the diagonal; unit diagonal implied) and
   of U (strictly above it) by columns: L's column k has the rows li[lp[k] .. lp[k+1]-1]
   with the values lv[...], U's column k likewise ui / uv / up; dinv[k] = 1 / U_kk; piv[k] = the row
   interchanged with row k at elimination step k. lp and up have n + 1 entries. */
typedef struct {
    int n;
    const int *piv, *lp, *li, *up, *ui;
    const double *dinv, *lv, *uv;
} symode_lu;

typedef struct {
    int interval;
    int method;
    double t, h, tend, t1;
    const double *k[6];
    const symode_lu *lu;
} symode_step_info;
typedef int (*symode_step_hook_fn)(void *hctx, const symode_step_info *info, const double *x);

/* symode_integrate_ws with an optional step hook (hook == NULL: identical to
   symode_integrate_ws). */
int symode_integrate_ws_hook(const symode_model *m, const symode_options *opt, int nt,
                             const double *times, const double *x0, const double *p,
                             const double *u, double *xout, symode_stats *stats, void *work,
                             symode_step_hook_fn hook, void *hctx);

const char *symode_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* SYMODE_INTEGRATOR_H */
