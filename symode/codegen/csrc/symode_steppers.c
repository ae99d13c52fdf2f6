/*
 * symode_steppers.c -- one step attempt of each method of the integrator (symode_integrator.c drives
 * them): DOPRI5 with PI step-size control and stiffness detection [HNW93 II.4-II.5, dopri5.f], and
 * RODAS4 with Gustafsson's predictive control [HW96 IV.7, rodas.f]; references in symode_integrator.c.
 */
#include "symode_solver.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* DOPRI5 step attempt from (t, y) with step h; k1 = f(t, y) must be valid.                    */
/* tend = t + h (or exactly the interval end). Returns STEP_* or a negative error code.        */
/* ------------------------------------------------------------------------------------------ */
int symode_dp5_attempt(solver *s, double t, double h, double tend, int reject_prev, double *hnew)
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
int symode_ros_prepare(solver *s, double t, double t1)
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
int symode_ros_attempt(solver *s, double t, double h, double tend, double t1, int reject_prev,
                       double *hnew)
{
    const int n = s->n;
    int i, rc;
    double *y = s->y, *ynew = s->ynew, *dy = s->dy, *fx = s->fx, *E = s->E;
    double *ak1 = s->ak1, *ak2 = s->ak2, *ak3 = s->ak3, *ak4 = s->ak4, *ak5 = s->ak5,
           *ak6 = s->ak6;
    double fac, hn, err = 0.0;
    ros_hcoef hc;

    if (!s->jac_ok) {
        rc = symode_ros_prepare(s, t, t1);
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

    ros_step_coefficients(h, &hc);

    /* stage 1 */
    for (i = 0; i < n; i++) ak1[i] = s->dy1[i] + hc.d1 * fx[i];
    lu_solve(&s->lu, ak1);
    /* stage 2 */
    for (i = 0; i < n; i++) ynew[i] = y[i] + RS_A21 * ak1[i];
    if (feval(s, dmin(t + RS_C2 * h, tend), ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) ak2[i] = dy[i] + hc.c21 * ak1[i] + hc.d2 * fx[i];
    lu_solve(&s->lu, ak2);
    /* stage 3 */
    for (i = 0; i < n; i++) ynew[i] = y[i] + RS_A31 * ak1[i] + RS_A32 * ak2[i];
    if (feval(s, dmin(t + RS_C3 * h, tend), ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) ak3[i] = dy[i] + hc.c31 * ak1[i] + hc.c32 * ak2[i] + hc.d3 * fx[i];
    lu_solve(&s->lu, ak3);
    /* stage 4 */
    for (i = 0; i < n; i++) ynew[i] = y[i] + RS_A41 * ak1[i] + RS_A42 * ak2[i] + RS_A43 * ak3[i];
    if (feval(s, dmin(t + RS_C4 * h, tend), ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak4[i] = dy[i] + hc.c41 * ak1[i] + hc.c42 * ak2[i] + hc.c43 * ak3[i] + hc.d4 * fx[i];
    lu_solve(&s->lu, ak4);
    /* stage 5 (c5 = 1, d5 = 0) */
    for (i = 0; i < n; i++)
        ynew[i] = y[i] + RS_A51 * ak1[i] + RS_A52 * ak2[i] + RS_A53 * ak3[i] + RS_A54 * ak4[i];
    if (feval(s, tend, ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak5[i] = dy[i] + hc.c51 * ak1[i] + hc.c52 * ak2[i] + hc.c53 * ak3[i] + hc.c54 * ak4[i];
    lu_solve(&s->lu, ak5);
    /* stage 6: embedded (order 3) solution ynew + u5, then y_new = that + u6 */
    for (i = 0; i < n; i++) ynew[i] += ak5[i];
    if (feval(s, tend, ynew, dy)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak6[i] = dy[i] + hc.c61 * ak1[i] + hc.c62 * ak2[i] + hc.c63 * ak3[i] + hc.c64 * ak4[i] +
                 hc.c65 * ak5[i];
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
