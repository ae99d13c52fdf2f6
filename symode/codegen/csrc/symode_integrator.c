/*
 * symode_integrator.c -- re-entrant C99 ODE integrator (DOPRI5 / RODAS4 / automatic switching).
 *
 * References
 *  [DP80]  J.R. Dormand, P.J. Prince, "A family of embedded Runge-Kutta formulae",
 *          J. Comput. Appl. Math. 6 (1980) 19-26.
 *  [HNW93] E. Hairer, S.P. Norsett, G. Wanner, "Solving Ordinary Differential Equations I",
 *          2nd ed., Springer 1993: Table II.5.2 (DOPRI5 tableau), Sec. II.4 (initial step,
 *          eq. 4.14), IV.2 / Hairer's code dopri5.f (PI control, stiffness detection).
 *  [HW96]  E. Hairer, G. Wanner, "Solving Ordinary Differential Equations II", 2nd ed.,
 *          Springer 1996, Sec. IV.7 (Rosenbrock methods, RODAS); coefficients as in Hairer's
 *          rodas.f, subroutine RO4COE (METH=1, the RODAS4 method of [HW96]).
 *
 * All coefficients below are either exact rationals (DOPRI5) or the 16-digit values of
 * rodas.f (RODAS4; they are solutions of nonlinear order conditions, no closed form).
 * The orders are verified empirically by tests/csrc/test_integrator_main.c.
 */
#include "symode_integrator.h"
#include "symode_methods.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                      */
/* ------------------------------------------------------------------------------------------ */
/* x * 0 is +-0 for finite x and NaN for an infinity or a NaN: four independent sums instead of a branch
   per entry (the Jacobian's n^2 entries at every RODAS4 step). */
static int all_finite(const double *v, int n)
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

static int feval(solver *s, double t, const double *x, double *out)
{
    s->st->n_rhs++;
    return s->m->rhs(s->m->ctx, t, x, s->p, s->u, out) != 0 ? SYMODE_ERR_RHS : 0;
}

static double err_scale(const solver *s, double a, double b)
{
    double sk = s->atol + s->rtol * dmax(fabs(a), fabs(b));
    return sk > DBL_MIN ? sk : DBL_MIN;
}

/* Initial step size, Hairer's HINIT [HNW93 Sec. II.4]; f0 = f(t, y). Uses ynew, ftmp as scratch.
   Returns h > 0, or a negative error code (rhs failure) in *rc. */
static double hinit(solver *s, double t, double t1, int iord, const double *f0, int *rc)
{
    int i, n = s->n;
    double dnf = 0.0, dny = 0.0, der2 = 0.0, der12, h, h1, hlim = t1 - t;
    const double *y = s->y;
    double *y1 = s->ynew, *f1 = s->ftmp;
    *rc = 0;
    if (s->hmax > 0.0) hlim = dmin(hlim, s->hmax);
    for (i = 0; i < n; i++) {
        double sk = err_scale(s, y[i], y[i]);
        dnf += (f0[i] / sk) * (f0[i] / sk);
        dny += (y[i] / sk) * (y[i] / sk);
    }
    if (dnf <= 1e-10 || dny <= 1e-10) h = 1e-6;
    else h = 0.01 * sqrt(dny / dnf);
    h = dmin(h, hlim);
    /* explicit Euler step to estimate the second derivative */
    for (i = 0; i < n; i++) y1[i] = y[i] + h * f0[i];
    if (feval(s, t + h, y1, f1) != 0) { *rc = SYMODE_ERR_RHS; return h; }
    for (i = 0; i < n; i++) {
        double sk = err_scale(s, y[i], y[i]);
        double d = (f1[i] - f0[i]) / sk;
        der2 += d * d;
    }
    der2 = sqrt(der2 / n) / h;
    if (!isfinite(der2)) return h; /* f blew up: keep the small guess */
    der12 = dmax(fabs(der2), sqrt(dnf / n));
    if (der12 <= 1e-15) h1 = dmax(1e-6, h * 1e-3);
    else h1 = pow(0.01 / der12, 1.0 / iord);
    h = dmin(dmin(100.0 * h, h1), hlim);
    return h;
}

/* ------------------------------------------------------------------------------------------ */
/* DOPRI5 step attempt from (t, y) with step h; k1 = f(t, y) must be valid.                    */
/* tend = t + h (or exactly the interval end). Returns STEP_* or a negative error code.        */
/* ------------------------------------------------------------------------------------------ */
static int dp5_attempt(solver *s, double t, double h, double tend, int reject_prev, double *hnew)
{
    const int n = s->n;
    int i;
    double *y = s->y, *y1 = s->ynew, *ysti = s->ysti;
    double *k1 = s->k1, *k2 = s->k2, *k3 = s->k3, *k4 = s->k4, *k5 = s->k5, *k6 = s->k6,
           *k7 = s->k7;
    double err = 0.0, fac11, fac, hn;
    const double expo1 = 0.2 - DP_BETA * 0.75;

    for (i = 0; i < n; i++) y1[i] = y[i] + h * DP_A21 * k1[i];
    if (feval(s, dmin(t + DP_C2 * h, tend), y1, k2)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) y1[i] = y[i] + h * (DP_A31 * k1[i] + DP_A32 * k2[i]);
    if (feval(s, dmin(t + DP_C3 * h, tend), y1, k3)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) y1[i] = y[i] + h * (DP_A41 * k1[i] + DP_A42 * k2[i] + DP_A43 * k3[i]);
    if (feval(s, dmin(t + DP_C4 * h, tend), y1, k4)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        y1[i] = y[i] + h * (DP_A51 * k1[i] + DP_A52 * k2[i] + DP_A53 * k3[i] + DP_A54 * k4[i]);
    if (feval(s, dmin(t + DP_C5 * h, tend), y1, k5)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ysti[i] = y[i] + h * (DP_A61 * k1[i] + DP_A62 * k2[i] + DP_A63 * k3[i] + DP_A64 * k4[i] +
                              DP_A65 * k5[i]);
    if (feval(s, tend, ysti, k6)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        y1[i] = y[i] + h * (DP_A71 * k1[i] + DP_A73 * k3[i] + DP_A74 * k4[i] + DP_A75 * k5[i] +
                            DP_A76 * k6[i]);
    if (feval(s, tend, y1, k7)) return SYMODE_ERR_RHS;

    /* error estimate: h * sum e_i k_i, RMS norm scaled by atol + rtol*max(|y|,|y1|) */
    for (i = 0; i < n; i++) {
        double e = h * (DP_E1 * k1[i] + DP_E3 * k3[i] + DP_E4 * k4[i] + DP_E5 * k5[i] +
                        DP_E6 * k6[i] + DP_E7 * k7[i]);
        double r;
        if (!isfinite(y1[i])) { err = NAN; break; }
        r = e / err_scale(s, y[i], y1[i]);
        err += r * r;
    }
    err = sqrt(err / n);
    if (!isfinite(err)) {
        *hnew = NONFINITE_SHRINK * h;
        return STEP_NONFINITE;
    }

    /* PI step-size control (dopri5.f) */
    fac11 = pow(err, expo1);
    fac = fac11 / pow(s->facold, DP_BETA);
    fac = dmax(DP_FACC2, dmin(DP_FACC1, fac / DP_SAFE));
    hn = h / fac;

    if (err <= 1.0) {
        s->facold = dmax(err, 1e-4);
        if (s->mode == SYMODE_AUTO) {
            /* stiffness detection: h*|lambda| ~ h ||k7 - k6|| / ||y1 - ysti|| (both at t+h).
               Unlike dopri5.f the norms are weighted by 1/sk (a diagonal similarity of J, same
               eigenvalues) so that components that are large in absolute terms but irrelevant
               for the error control do not mask the stiff ones. */
            double stnum = 0.0, stden = 0.0, hlamb = 0.0;
            for (i = 0; i < n; i++) {
                double w = 1.0 / err_scale(s, y[i], y1[i]);
                double a = (k7[i] - k6[i]) * w, b = (y1[i] - ysti[i]) * w;
                stnum += a * a;
                stden += b * b;
            }
            if (stden > 0.0) hlamb = h * sqrt(stnum / stden);
            if (hlamb > DP_STIFF_HLAMB) {
                s->nonsti = 0;
                if (++s->iasti >= DP_STIFF_COUNT) s->want_switch = 1;
            } else if (++s->nonsti >= DP_NONSTIFF_RESET) {
                s->iasti = 0;
            }
        }
        if (reject_prev) hn = dmin(hn, h);
        /* accept: y <- y1, FSAL k1 <- k7 (pointer swaps) */
        s->y = y1; s->ynew = y;
        s->k1 = k7; s->k7 = k1;
        s->k1_ok = 1;
        *hnew = hn;
        return STEP_ACCEPT;
    }
    *hnew = h / dmin(DP_FACC1, fac11 / DP_SAFE);
    return STEP_REJECT;
}

/* Jacobian (analytic or forward differences), f(t,y), df/dt, rho bound at (t, y). */
static int ros_prepare(solver *s, double t, double t1)
{
    const int n = s->n;
    const symode_model *m = s->m;
    int i, j;
    double *y = s->y, *J = s->J;
    double n1 = 0.0, ninf = 0.0;

    if (s->k1_ok && s->method == SYMODE_STIFF) {
        memcpy(s->dy1, s->k1, (size_t)n * sizeof(double)); /* f(t,y) already known */
    } else if (feval(s, t, y, s->dy1)) {
        return SYMODE_ERR_RHS;
    }
    s->k1_ok = 0;
    if (!all_finite(s->dy1, n)) return SYMODE_ERR_NONFINITE;

    s->st->n_jac++;
    if (m->jac) {
        if (m->jac(m->ctx, t, y, s->p, s->u, J) != 0) return SYMODE_ERR_RHS;
    } else {
        /* forward differences with rodas.f/radau5.f increments sqrt(eps * max(1e-5, |x_j|)).
           (sqrt(eps)*max(|x_j|,1) was tried: for tiny states, e.g. Robertson's y2 ~ 1e-8, the
           increment exceeds the state, the Jacobian is wrong and RODAS4 needs 3x the steps.) */
        for (j = 0; j < n; j++) {
            double yj = y[j], del = sqrt(DBL_EPSILON * dmax(1e-5, fabs(yj)));
            y[j] = yj + del;
            del = y[j] - yj; /* exactly representable increment */
            if (feval(s, t, y, s->ftmp)) { y[j] = yj; return SYMODE_ERR_RHS; }
            y[j] = yj;
            for (i = 0; i < n; i++) J[i + (size_t)j * n] = (s->ftmp[i] - s->dy1[i]) / del;
        }
    }
    if (!all_finite(J, n * n)) return SYMODE_ERR_NONFINITE;

    if (m->nonautonomous) {
        /* df/dt by forward (backward at the interval end) difference, as in rodas.f */
        double delt = ros_time_increment(t, t1);
        if (feval(s, t + delt, y, s->ftmp)) return SYMODE_ERR_RHS;
        for (i = 0; i < n; i++) s->fx[i] = (s->ftmp[i] - s->dy1[i]) / delt;
        if (!all_finite(s->fx, n)) return SYMODE_ERR_NONFINITE;
    } else {
        memset(s->fx, 0, (size_t)n * sizeof(double));
    }

    /* rho(J) <= min(||J||_1, ||J||_inf): only AUTO's switch back to the explicit method needs it. The row
       sums accumulate column by column (the same order of additions per row as a loop along the row,
       with contiguous reads); s->ftmp is free here. */
    if (s->mode == SYMODE_AUTO) {
        double *r = s->ftmp;
        memset(r, 0, (size_t)n * sizeof(double));
        for (j = 0; j < n; j++) {
            const double *Jj = J + (size_t)j * n;
            double c = 0.0;
            for (i = 0; i < n; i++) {
                double a = fabs(Jj[i]);
                c += a;
                r[i] += a;
            }
            n1 = dmax(n1, c);
        }
        for (i = 0; i < n; i++) ninf = dmax(ninf, r[i]);
        s->rho = dmin(n1, ninf);
    }
    s->jac_ok = 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* RODAS4 step attempt from (t, y) with step h. Returns STEP_* or a negative error code.       */
/* ------------------------------------------------------------------------------------------ */
static int ros_attempt(solver *s, double t, double h, double tend, double t1, int reject_prev,
                       double *hnew)
{
    const int n = s->n;
    int i, rc;
    double *y = s->y, *ynew = s->ynew, *dy = s->dy, *fx = s->fx, *E = s->E;
    double *ak1 = s->ak1, *ak2 = s->ak2, *ak3 = s->ak3, *ak4 = s->ak4, *ak5 = s->ak5,
           *ak6 = s->ak6;
    double fac, hn, err = 0.0, hc21, hc31, hc32, hc41, hc42, hc43, hc51, hc52, hc53, hc54, hc61,
           hc62, hc63, hc64, hc65, hd1, hd2, hd3, hd4;

    if (!s->jac_ok) {
        rc = ros_prepare(s, t, t1);
        if (rc) return rc;
    }

    /* iteration matrix E = 1/(h gamma) I - J */
    fac = 1.0 / (h * RS_GAMMA);
    iteration_matrix(n, fac, s->J, E);
    s->st->n_lu++;
    if (lu_factor(n, E, &s->lus)) {
        if (++s->nsing >= RS_MAXSING) return SYMODE_ERR_SINGULAR;
        *hnew = 0.5 * h;
        return STEP_REJECT;
    }

    hc21 = RS_C21 / h;
    hc31 = RS_C31 / h; hc32 = RS_C32 / h;
    hc41 = RS_C41 / h; hc42 = RS_C42 / h; hc43 = RS_C43 / h;
    hc51 = RS_C51 / h; hc52 = RS_C52 / h; hc53 = RS_C53 / h; hc54 = RS_C54 / h;
    hc61 = RS_C61 / h; hc62 = RS_C62 / h; hc63 = RS_C63 / h; hc64 = RS_C64 / h; hc65 = RS_C65 / h;
    hd1 = h * RS_D1; hd2 = h * RS_D2; hd3 = h * RS_D3; hd4 = h * RS_D4;

    /* stage 1 */
    for (i = 0; i < n; i++) ak1[i] = s->dy1[i] + hd1 * fx[i];
    lu_solve(&s->lu, ak1);
    /* stage 2 */
    for (i = 0; i < n; i++) ynew[i] = y[i] + RS_A21 * ak1[i];
    if (feval(s, dmin(t + RS_C2 * h, tend), ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) ak2[i] = dy[i] + hc21 * ak1[i] + hd2 * fx[i];
    lu_solve(&s->lu, ak2);
    /* stage 3 */
    for (i = 0; i < n; i++) ynew[i] = y[i] + RS_A31 * ak1[i] + RS_A32 * ak2[i];
    if (feval(s, dmin(t + RS_C3 * h, tend), ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) ak3[i] = dy[i] + hc31 * ak1[i] + hc32 * ak2[i] + hd3 * fx[i];
    lu_solve(&s->lu, ak3);
    /* stage 4 */
    for (i = 0; i < n; i++) ynew[i] = y[i] + RS_A41 * ak1[i] + RS_A42 * ak2[i] + RS_A43 * ak3[i];
    if (feval(s, dmin(t + RS_C4 * h, tend), ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak4[i] = dy[i] + hc41 * ak1[i] + hc42 * ak2[i] + hc43 * ak3[i] + hd4 * fx[i];
    lu_solve(&s->lu, ak4);
    /* stage 5 (c5 = 1, d5 = 0) */
    for (i = 0; i < n; i++)
        ynew[i] = y[i] + RS_A51 * ak1[i] + RS_A52 * ak2[i] + RS_A53 * ak3[i] + RS_A54 * ak4[i];
    if (feval(s, tend, ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak5[i] = dy[i] + hc51 * ak1[i] + hc52 * ak2[i] + hc53 * ak3[i] + hc54 * ak4[i];
    lu_solve(&s->lu, ak5);
    /* stage 6: embedded (order 3) solution ynew + u5, then y_new = that + u6 */
    for (i = 0; i < n; i++) ynew[i] += ak5[i];
    if (feval(s, tend, ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak6[i] = dy[i] + hc61 * ak1[i] + hc62 * ak2[i] + hc63 * ak3[i] + hc64 * ak4[i] +
                 hc65 * ak5[i];
    lu_solve(&s->lu, ak6);
    for (i = 0; i < n; i++) ynew[i] += ak6[i];

    /* error estimate: u6 = y_new - y_embedded */
    for (i = 0; i < n; i++) {
        double r;
        if (!isfinite(ynew[i])) { err = NAN; break; }
        r = ak6[i] / err_scale(s, y[i], ynew[i]);
        err += r * r;
    }
    err = sqrt(err / n);
    if (!isfinite(err)) {
        *hnew = NONFINITE_SHRINK * h;
        return STEP_NONFINITE;
    }
    s->nsing = 0;

    /* err^(1/4) as two square roots: correctly rounded each, and a tenth of pow's cost (once or twice per
       step, a visible share of a small model's step) */
    fac = dmax(RS_FAC2, dmin(RS_FAC1, sqrt(sqrt(err)) / RS_SAFE));
    hn = h / fac;
    if (err <= 1.0) {
        if (s->ros_nacc >= 1) { /* Gustafsson's predictive controller (rodas.f, PRED) */
            double facgus = (s->hacc / h) * sqrt(sqrt(err * err / s->erracc)) / RS_SAFE;
            facgus = dmax(RS_FAC2, dmin(RS_FAC1, facgus));
            fac = dmax(fac, facgus);
            hn = h / fac;
        }
        s->hacc = h;
        s->erracc = dmax(1e-2, err);
        s->ros_nacc++;
        if (s->mode == SYMODE_AUTO) {
            if (h * s->rho <= RS_NONSTIFF_HRHO) {
                if (++s->nonstiff_count >= s->nonstiff_needed) s->want_switch = 1;
            } else {
                s->nonstiff_count = 0;
            }
        }
        if (reject_prev) hn = dmin(hn, h);
        s->y = ynew; s->ynew = y;
        s->jac_ok = 0;
        *hnew = hn;
        return STEP_ACCEPT;
    }
    if (s->st->n_accepted == 0) hn = 0.1 * h; /* very first step of the call failed */
    *hnew = hn;
    return STEP_REJECT;
}

static void switch_method(solver *s)
{
    if (s->method == SYMODE_EXPLICIT) {
        if (s->expl_since_switch < AUTO_SHORT_EXPLICIT && s->nonstiff_needed < RS_NONSTIFF_MAX)
            s->nonstiff_needed *= 2; /* explicit phase was short: be more reluctant next time */
        s->method = SYMODE_STIFF;
        s->jac_ok = 0;
        s->ros_nacc = 0;
        s->nsing = 0;
        s->nonstiff_count = 0;
        /* k1 (FSAL) stays valid: it is f(t, y) and is reused by ros_prepare */
    } else {
        s->method = SYMODE_EXPLICIT;
        s->k1_ok = 0;
        s->iasti = s->nonsti = 0;
        s->facold = 1e-4;
        s->expl_since_switch = 0;
    }
    s->st->n_switches++;
    s->want_switch = 0;
}

/* Integrate s->y from t0 to t1 (u constant). On failure *tfail is the time reached. */
static int run_interval(solver *s, double t0, double t1, double *tfail)
{
    double t = t0, h;
    int reject = 0, nonfinite_rej = 0, rc;
    long expl_attempts = 0;

    /* restart: discard FSAL / Jacobian data, reset controller memories */
    s->k1_ok = 0;
    s->jac_ok = 0;
    s->facold = 1e-4;
    s->ros_nacc = 0;
    s->nsing = 0;
    *tfail = t0;

    if (s->h <= 0.0) {
        if (feval(s, t, s->y, s->k1)) return SYMODE_ERR_RHS;
        if (!all_finite(s->k1, s->n)) return SYMODE_ERR_NONFINITE;
        s->k1_ok = 1;
        s->h = hinit(s, t, t1, s->method == SYMODE_EXPLICIT ? 5 : 4, s->k1, &rc);
        if (rc) return rc;
    }
    h = dmin(s->h, t1 - t0);
    if (s->hmax > 0.0) h = dmin(h, s->hmax);

    while (t < t1) {
        double hstep = h, tend, hn = h;
        int last = 0;
        *tfail = t;
        if (s->st->n_steps >= s->max_steps) return SYMODE_ERR_MAXSTEPS;
        if (t + 1.01 * hstep >= t1) { hstep = t1 - t; last = 1; }
        if (!last && !(hstep >= HMIN_REL * dmax(fabs(t), fabs(t1))))
            return nonfinite_rej ? SYMODE_ERR_NONFINITE : SYMODE_ERR_HMIN;
        tend = last ? t1 : t + hstep;
        s->st->n_steps++;

        if (s->method == SYMODE_EXPLICIT) {
            if (!s->k1_ok) {
                if (feval(s, t, s->y, s->k1)) return SYMODE_ERR_RHS;
                if (!all_finite(s->k1, s->n)) return SYMODE_ERR_NONFINITE;
                s->k1_ok = 1;
            }
            expl_attempts++;
            rc = dp5_attempt(s, t, hstep, tend, reject, &hn);
        } else {
            rc = ros_attempt(s, t, hstep, tend, t1, reject, &hn);
        }
        if (rc < 0) return rc;

        if (rc == STEP_ACCEPT) {
            if (s->hook) {
                /* after acceptance s->ynew holds the (unchanged) step-start state */
                symode_step_info info;
                info.interval = s->interval;
                info.method = s->method;
                info.t = t;
                info.h = hstep;
                info.tend = tend;
                info.t1 = t1;
                if (s->method == SYMODE_EXPLICIT) { /* FSAL swap: this step's K_1 is now in k7 */
                    info.k[0] = s->k7; info.k[1] = s->k2; info.k[2] = s->k3;
                    info.k[3] = s->k4; info.k[4] = s->k5; info.k[5] = s->k6;
                    info.lu = NULL;
                } else {
                    info.k[0] = s->ak1; info.k[1] = s->ak2; info.k[2] = s->ak3;
                    info.k[3] = s->ak4; info.k[4] = s->ak5; info.k[5] = s->ak6;
                    info.lu = &s->lu;
                }
                if (s->hook(s->hook_ctx, &info, s->ynew) != 0) return SYMODE_ERR_NOMEM;
            }
            s->st->n_accepted++;
            t = tend;
            reject = 0;
            nonfinite_rej = 0;
            /* after a step shortened to land on t1 keep the wanted step as the hint */
            h = (last && hstep < h) ? dmax(hn, h) : hn;
            if (s->hmax > 0.0) h = dmin(h, s->hmax);
            if (s->method == SYMODE_EXPLICIT) s->expl_since_switch++;
            if (s->mode == SYMODE_AUTO) {
                if (!s->want_switch && s->method == SYMODE_EXPLICIT &&
                    expl_attempts > AUTO_FORCE_STIFF_STEPS)
                    s->want_switch = 1;
                if (s->want_switch) {
                    switch_method(s);
                    expl_attempts = 0;
                }
            }
        } else {
            s->st->n_rejected++;
            reject = 1;
            nonfinite_rej = (rc == STEP_NONFINITE);
            h = hn;
        }
    }
    s->h = h;
    *tfail = t1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* public API                                                                                   */
/* ------------------------------------------------------------------------------------------ */
void symode_default_options(symode_options *opt)
{
    if (!opt) return;
    opt->rtol = 1e-6;
    opt->atol = 1e-9;
    opt->h0 = 0.0;
    opt->hmax = 0.0;
    opt->max_steps = DEFAULT_MAX_STEPS;
    opt->method = SYMODE_AUTO;
}

size_t symode_workspace_size(int nx)
{
    return symode_workspace_size_method(nx, SYMODE_AUTO);
}

/* RODAS4's matrices: J, E (n^2 each), the compressed factors' values (dinv: n, lv and uv: n(n-1)/2 each)
   and integers (piv, nz: n each; lp, up: n + 1 each; li, ui: n(n-1)/2 each). */
static size_t lu_nvals(size_t n) { return n * (n - 1) / 2 + 1; }

size_t symode_workspace_size_method(int nx, int method)
{
    size_t n = nx > 0 ? (size_t)nx : 0;
    if (method == SYMODE_EXPLICIT) return N_VEC * n * sizeof(double); /* no Jacobian / LU storage */
    return (N_VEC * n + 2 * n * n + n + 2 * lu_nvals(n)) * sizeof(double) +
           (4 * n + 2 + 2 * lu_nvals(n)) * sizeof(int);
}

const char *symode_strerror(int code)
{
    switch (code) {
    case SYMODE_OK: return "success";
    case SYMODE_ERR_MAXSTEPS: return "maximum number of steps exceeded";
    case SYMODE_ERR_HMIN: return "step size underflow";
    case SYMODE_ERR_NONFINITE: return "non-finite value (NaN/Inf) in rhs or state";
    case SYMODE_ERR_SINGULAR: return "singular iteration matrix";
    case SYMODE_ERR_RHS: return "rhs or Jacobian function returned an error";
    case SYMODE_ERR_ARGS: return "invalid arguments";
    case SYMODE_ERR_NOMEM: return "out of memory";
    default: return "unknown error";
    }
}

static void fill_nan_rows(double *xout, int nx, int from_row, int nt)
{
    int i, k;
    if (!xout) return;
    for (i = from_row; i < nt; i++)
        for (k = 0; k < nx; k++) xout[(size_t)i * nx + k] = NAN;
}

int symode_integrate_ws(const symode_model *m, const symode_options *opt, int nt,
                        const double *times, const double *x0, const double *p, const double *u,
                        double *xout, symode_stats *stats, void *work)
{
    return symode_integrate_ws_hook(m, opt, nt, times, x0, p, u, xout, stats, work, NULL, NULL);
}

int symode_integrate_ws_hook(const symode_model *m, const symode_options *opt, int nt,
                             const double *times, const double *x0, const double *p,
                             const double *u, double *xout, symode_stats *stats, void *work,
                             symode_step_hook_fn hook, void *hctx)
{
    symode_stats local_stats;
    symode_options o;
    solver s;
    int i, n, rc = 0;
    double *w;

    if (!stats) stats = &local_stats;
    stats_clear(stats);

    if (opt) o = *opt;
    else symode_default_options(&o);
    stats->method_used = o.method == SYMODE_STIFF ? SYMODE_STIFF : SYMODE_EXPLICIT;

    /* argument checks */
    if (!m || !m->rhs || m->nx <= 0 || m->np < 0 || m->nu < 0 || nt < 1 || !times || !x0 ||
        !xout || !work || (m->np > 0 && !p) || (m->nu > 0 && nt > 1 && !u) ||
        !(o.rtol >= 0.0) || !(o.atol >= 0.0) || !isfinite(o.rtol) || !isfinite(o.atol) ||
        (o.rtol == 0.0 && o.atol == 0.0) ||
        (o.method != SYMODE_AUTO && o.method != SYMODE_EXPLICIT && o.method != SYMODE_STIFF))
        return SYMODE_ERR_ARGS;
    for (i = 0; i < nt; i++) {
        if (!isfinite(times[i]) || (i > 0 && !(times[i] > times[i - 1]))) return SYMODE_ERR_ARGS;
    }
    n = m->nx;

    memcpy(xout, x0, (size_t)n * sizeof(double));
    if (!all_finite(x0, n)) {
        stats->fail_interval = nt > 1 ? 0 : -1;
        stats->fail_t = times[0];
        fill_nan_rows(xout, n, 1, nt);
        return SYMODE_ERR_NONFINITE;
    }
    if (nt == 1) return 0;

    /* solver setup */
    memset(&s, 0, sizeof(s));
    s.m = m;
    s.p = p;
    s.n = n;
    s.rtol = dmax(o.rtol, RTOL_MIN);
    s.atol = o.atol;
    s.hmax = o.hmax > 0.0 ? o.hmax : 0.0;
    s.max_steps = o.max_steps > 0 ? o.max_steps : DEFAULT_MAX_STEPS;
    s.mode = o.method;
    s.method = o.method == SYMODE_STIFF ? SYMODE_STIFF : SYMODE_EXPLICIT;
    s.st = stats;
    s.h = o.h0 > 0.0 ? o.h0 : 0.0;
    s.facold = 1e-4;
    s.nonstiff_needed = RS_NONSTIFF_COUNT;
    s.expl_since_switch = AUTO_SHORT_EXPLICIT; /* no back-off for the first switch */
    s.hook = hook;
    s.hook_ctx = hctx;

    w = (double *)work;
    s.y = w; w += n;
    s.ynew = w; w += n;
    s.ysti = w; w += n;
    s.k1 = w; w += n;
    s.k2 = w; w += n;
    s.k3 = w; w += n;
    s.k4 = w; w += n;
    s.k5 = w; w += n;
    s.k6 = w; w += n;
    s.k7 = w; w += n;
    s.dy1 = w; w += n;
    s.dy = w; w += n;
    s.ak1 = w; w += n;
    s.ak2 = w; w += n;
    s.ak3 = w; w += n;
    s.ak4 = w; w += n;
    s.ak5 = w; w += n;
    s.ak6 = w; w += n;
    s.fx = w; w += n;
    s.ftmp = w; w += n;
    if (o.method != SYMODE_EXPLICIT) { /* the explicit method never touches J, E, ipiv */
        size_t nv = lu_nvals((size_t)n);
        int *iw;
        s.J = w; w += (size_t)n * n;
        s.E = w; w += (size_t)n * n;
        s.lus.dinv = w; w += n;
        s.lus.lv = w; w += nv;
        s.lus.uv = w; w += nv;
        iw = (int *)(void *)w;
        s.ipiv = s.lus.piv = iw; iw += n;
        s.lus.nz = iw; iw += n;
        s.lus.lp = iw; iw += n + 1;
        s.lus.up = iw; iw += n + 1;
        s.lus.li = iw; iw += nv;
        s.lus.ui = iw;
        s.lu.n = n;
        s.lu.piv = s.lus.piv;
        s.lu.lp = s.lus.lp;
        s.lu.li = s.lus.li;
        s.lu.up = s.lus.up;
        s.lu.ui = s.lus.ui;
        s.lu.dinv = s.lus.dinv;
        s.lu.lv = s.lus.lv;
        s.lu.uv = s.lus.uv;
    }

    memcpy(s.y, x0, (size_t)n * sizeof(double));
    for (i = 0; i < nt - 1; i++) {
        double tfail = times[i];
        s.u = m->nu > 0 ? u + (size_t)i * m->nu : u;
        s.interval = i;
        rc = run_interval(&s, times[i], times[i + 1], &tfail);
        if (rc) {
            stats->fail_interval = i;
            stats->fail_t = tfail;
            fill_nan_rows(xout, n, i + 1, nt);
            break;
        }
        memcpy(xout + (size_t)(i + 1) * n, s.y, (size_t)n * sizeof(double));
    }
    stats->method_used = s.method;
    return rc;
}

int symode_integrate(const symode_model *m, const symode_options *opt, int nt, const double *times,
                     const double *x0, const double *p, const double *u, double *xout,
                     symode_stats *stats)
{
    void *work;
    int rc;
    if (!m || m->nx <= 0) {
        if (stats) stats_clear(stats);
        return SYMODE_ERR_ARGS;
    }
    work = malloc(symode_workspace_size_method(m->nx, opt ? opt->method : SYMODE_AUTO));
    if (!work) {
        if (stats) stats_clear(stats);
        return SYMODE_ERR_NOMEM;
    }
    rc = symode_integrate_ws(m, opt, nt, times, x0, p, u, xout, stats, work);
    free(work);
    return rc;
}
