/*
 * symode_solver.h -- the integrator's internal state, shared by the driver (symode_integrator.c: initial
 * step, method switching, intervals, entry points) and the single-step attempts of its two methods
 * (symode_steppers.c: DOPRI5, RODAS4). Internal: not part of the runtime's API (symode_integrator.h).
 */
#ifndef SYMODE_SOLVER_H
#define SYMODE_SOLVER_H

#include "symode_integrator.h"
#include "symode_methods.h"

#include <float.h>
#include <math.h>

/* DOPRI5 step-size control (dopri5.f defaults): h_new/h in [1/DP_FACC1 .. 1/DP_FACC2] = [0.2, 10],
   PI control fac = err^(1/5 - 0.75 beta) / err_old^beta, beta = 0.04, safety 0.9. */
#define DP_SAFE 0.9
#define DP_BETA 0.04
#define DP_FACC1 5.0  /* 1/0.2 */
#define DP_FACC2 0.1  /* 1/10 */
/* h*|lambda| threshold for "stiff". dopri5.f uses 3.25 (the stability boundary on the real axis is
   ~3.3), but with PI control a stability-limited step settles slightly inside the boundary (~3.0
   observed), so dopri5's test may never fire. A sustained h|lambda| > 2.5 already means the step is
   limited by stability rather than accuracy (such a mode would not be resolved accurately). */
#define DP_STIFF_HLAMB 2.5
#define DP_STIFF_COUNT 15     /* consecutive positive stiffness tests -> stiff */
#define DP_NONSTIFF_RESET 6   /* negative tests that reset the stiffness counter */

/* rodas.f step-size control: h_new/h in [0.2, 6], safety 0.9, Gustafsson predictive control. */
#define RS_SAFE 0.9
#define RS_FAC1 5.0          /* 1/0.2 */
#define RS_FAC2 (1.0 / 6.0)
#define RS_MAXSING 5         /* consecutive singular iteration matrices before failing */

/* AUTO switching back to explicit: h * rho(J) (rho bounded by min(||J||_1, ||J||_inf)) must stay
   below RS_NONSTIFF_HRHO (well inside DOPRI5's stability region, |h lambda| <~ 3.3) for
   `nonstiff_needed` consecutive accepted Rosenbrock steps. nonstiff_needed starts at
   RS_NONSTIFF_COUNT and doubles (up to RS_NONSTIFF_MAX) whenever an explicit phase ends with a
   switch back to stiff after fewer than AUTO_SHORT_EXPLICIT accepted steps (anti-oscillation). */
#define RS_NONSTIFF_HRHO 1.0
#define RS_NONSTIFF_COUNT 15
#define RS_NONSTIFF_MAX 4096
#define AUTO_SHORT_EXPLICIT 100
/* AUTO: an interval that needs more than this many explicit step attempts goes stiff anyway. */
#define AUTO_FORCE_STIFF_STEPS 5000

#define DEFAULT_MAX_STEPS 10000000L
#define NONFINITE_SHRINK 0.25 /* step reduction after a step produced NaN/Inf */
#define HMIN_REL 1e-14        /* step-size underflow: h < HMIN_REL * max(|t|, |t_end|) */
#define RTOL_MIN 1e-14

#define N_VEC 20 /* number of length-nx work vectors */

enum { STEP_REJECT = 0, STEP_ACCEPT = 1, STEP_NONFINITE = 2 };

typedef struct {
    const symode_model *m;
    const double *p;
    const double *u; /* inputs of the current interval */
    int n;
    double rtol, atol, hmax;
    long max_steps;
    int mode;   /* requested method */
    int method; /* active method */
    symode_stats *st;

    /* DOPRI5 vectors */
    double *y, *ynew, *ysti, *k1, *k2, *k3, *k4, *k5, *k6, *k7;
    /* RODAS4 vectors */
    double *dy1, *dy, *ak1, *ak2, *ak3, *ak4, *ak5, *ak6, *fx, *ftmp;
    double *J, *E; /* column-major n*n */
    int *ipiv;
    /* compressed factors of E: storage and the view the solves use */
    lu_store lus;
    symode_lu lu;

    double h;    /* proposed next step (hint across intervals), <= 0: unknown */
    int k1_ok;   /* DOPRI5 FSAL: k1 == f(t, y) */
    int jac_ok;  /* RODAS4: dy1 == f(t, y), J, fx, rho valid at (t, y) */
    double rho;  /* spectral radius bound of J */

    /* DOPRI5 controller / stiffness detection */
    double facold;
    int iasti, nonsti;
    /* RODAS4 controller */
    int ros_nacc;
    double hacc, erracc;
    int nsing;
    /* AUTO switching */
    int want_switch;
    int nonstiff_count, nonstiff_needed;
    long expl_since_switch;
    /* optional accepted-step hook (symode_integrate_ws_hook) */
    symode_step_hook_fn hook;
    void *hook_ctx;
    int interval;
} solver;

/* x * 0 is +-0 for finite x and NaN for an infinity or a NaN: four independent sums instead of a branch
   per entry (the Jacobian's n^2 entries at every RODAS4 step). */
static inline int all_finite(const double *v, int n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int i;
    for (i = 0; i + 3 < n; i += 4) {
        s0 += v[i] * 0.0;
        s1 += v[i + 1] * 0.0;
        s2 += v[i + 2] * 0.0;
        s3 += v[i + 3] * 0.0;
    }
    for (; i < n; i++) s0 += v[i] * 0.0;
    return (s0 + s1) + (s2 + s3) == 0.0;
}

static inline int feval(solver *s, double t, const double *x, double *out)
{
    s->st->n_rhs++;
    return s->m->rhs(s->m->ctx, t, x, s->p, s->u, out) != 0 ? SYMODE_ERR_RHS : 0;
}

static inline double err_scale(const solver *s, double a, double b)
{
    double sk = s->atol + s->rtol * dmax(fabs(a), fabs(b));
    return sk > DBL_MIN ? sk : DBL_MIN;
}

/* One step attempt from (t, s->y) with step h to tend (= t + h, or exactly the interval end); the step
   size proposed next in *hnew. Return STEP_* or a negative error code (symode_steppers.c). DOPRI5 needs
   k1 = f(t, y); RODAS4 needs symode_ros_prepare at (t, y) first (f, J, df/dt; t1: the interval end). */
int symode_dp5_attempt(solver *s, double t, double h, double tend, int reject_prev, double *hnew);
int symode_ros_prepare(solver *s, double t, double t1);
int symode_ros_attempt(solver *s, double t, double h, double tend, double t1, int reject_prev,
                       double *hnew);

#endif
