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
 * The coefficients (symode_methods.h) are either exact rationals (DOPRI5) or the 16-digit values of
 * rodas.f (RODAS4; they are solutions of nonlinear order conditions, no closed form).
 * The orders are verified empirically by tests/csrc/test_integrator_main.c. This file: the initial step,
 * method switching, the intervals and the entry points; the single-step attempts are in symode_steppers.c,
 * the state they share in symode_solver.h.
 */
#include "symode_solver.h"

#include <stdlib.h>
#include <string.h>

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
            rc = symode_dp5_attempt(s, t, hstep, tend, reject, &hn);
        } else {
            rc = symode_ros_attempt(s, t, hstep, tend, t1, reject, &hn);
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
