/*
 * symode_tape.c -- discrete adjoint / discrete forward sensitivities of symode_integrator.c.
 *
 * The integrator reports every accepted step through symode_integrate_ws_hook(); the tape keeps
 * (interval, method, t, h, tend, t1, x_start) and, within a memory limit (symode_tape_set_stage_limit),
 * the step's stage values as the integrator computed them: DOPRI5's K_1..K_6, or RODAS4's k_1..k_6
 * with the LU factors of E. Each step is a smooth map x_start -> x_end (for fixed p, u, t, h) given by
 * the DOPRI5 or RODAS4 stage formulas. The derivative code needs the stage states Y_j, stage values and
 * factors: from a stored step they are taken from the tape (the Y_j recomputed from y and the K's with
 * the integrator's own expressions), otherwise the step is re-evaluated ("replayed") with the
 * integrator's exact expressions and coefficients (shared through symode_methods.h; the replay test
 * checks bit-for-bit agreement with the integrator output). Either way the same numbers.
 *
 * DOPRI5 step (K_1 = f(t, y), Y_1 = y, T_j = min(t + c_j h, tend), T_6 = tend):
 *   Y_j = y + h sum_{l<j} a_jl K_l,  K_j = f(T_j, Y_j),  y_new = y + h sum_l b_l K_l.
 *   (K_7 = f(tend, y_new) only feeds the error estimate / FSAL and does not enter y_new.)
 * RODAS4 step (E = I/(h gamma) - J, J = Jx(t, y), f_t = 0 or the integrator's forward
 *   difference (f(t + dt, y) - f(t, y)) / dt with the same dt):
 *   r_1 = f(t, y) + h d_1 f_t,  k_1 = E^{-1} r_1,
 *   Y_i = y + sum_{j<i} a_ij k_j (i = 2..6; a_6j = a_5j, a_65 = 1),
 *   r_i = f(T_i, Y_i) + sum_{j<i} (c_ij / h) k_j + h d_i f_t,  k_i = E^{-1} r_i,
 *   y_new = Y_6 + k_6.
 *   Derivative of a solve: dk = E^{-1} (dr + dJ k)  ->  adjoint rbar = E^{-T} kbar and the
 *   second-order term rbar^T dJ k (vjp2 with v = k_i, w = rbar_i), tangent jvp2(v = k_i).
 */
#include "symode_tape_impl.h"
#include "symode_methods.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>


/* allocate everything in one block; returns the block or NULL */
void *symode_tape_ws_alloc(wspace *w, int n, int np, int forward)
{
    size_t nn = (size_t)n, P = (size_t)n + (size_t)np, npp = np > 0 ? (size_t)np : 1;
    size_t nv = nn * (nn - 1) / 2 + 1; /* capacity of L's / U's compressed nonzeros */
    size_t nd = 0, i;
    double *b, *q;
    int *qi;
    void *block;
    nd += 6 * nn + 6 * nn + 6 * nn + 3 * nn + 2 * nn * nn; /* Y, K, F, ynew fx ftmp, J E */
    nd += nn + 2 * nv;       /* replay's compressed factors: dinv, lv, uv */
    nd += 22 * nn + 3 * npp; /* kbar rbar (12), ybar w ox (3), op gp (2 npp), fxbar (nn + npp), Kcat (6) */
    if (forward) nd += 6 * nn * P + 4 * nn * P + 2 * nn * npp + nn * nn + npp + nn + nn * nn + nn * npp;
    block = malloc(nd * sizeof(double) + (4 * nn + 2 + 2 * nv) * sizeof(int) + sizeof(double));
    if (!block) return NULL;
    b = (double *)block;
    memset(b, 0, nd * sizeof(double));
    q = b;
    for (i = 0; i < 6; i++) { w->Y[i] = q; q += nn; }
    for (i = 0; i < 6; i++) { w->Kbuf[i] = q; q += nn; }
    for (i = 0; i < 6; i++) { w->F[i] = q; q += nn; }
    w->ynew = q; q += nn;
    w->fx = q; q += nn;
    w->ftmp = q; q += nn;
    w->J = q; q += nn * nn;
    w->Ebuf = q; q += nn * nn;
    w->lbuf_d = q; q += nn + 2 * nv;
    for (i = 0; i < 6; i++) { w->kbar[i] = q; q += nn; }
    for (i = 0; i < 6; i++) { w->rbar[i] = q; q += nn; }
    w->ybar = q; q += nn;
    w->w = q; q += nn;
    w->ox = q; q += nn;
    w->op = q; q += npp;
    w->gp = q; q += npp;
    w->fxbar = q; q += nn + npp;
    w->Kcat = q; q += 6 * nn;
    if (forward) {
        for (i = 0; i < 6; i++) { w->dK[i] = q; q += nn * P; }
        w->dY = q; q += nn * P;
        w->G = q; q += nn * P;
        w->Gt = q; q += nn * P;
        w->dfx = q; q += nn * P;
        w->Jp = q; q += nn * npp;
        w->Jp2 = q; q += nn * npp;
        w->Jx2 = q; q += nn * nn;
        w->ep = q; q += npp;
        w->colv = q; q += nn;
        w->Mx = q; q += nn * nn;
        w->Mp = q; q += nn * npp;
    }
    /* the replay's factors: piv, nz (lu_factor's scratch), lp, up, li, ui */
    w->lbuf_i = qi = (int *)(void *)q;
    w->lu_buf.n = n;
    w->lu_buf.piv = qi;
    w->lu_buf.lp = qi + 2 * nn;
    w->lu_buf.up = qi + 3 * nn + 1;
    w->lu_buf.li = qi + 4 * nn + 2;
    w->lu_buf.ui = qi + 4 * nn + 2 + nv;
    w->lu_buf.dinv = w->lbuf_d;
    w->lu_buf.lv = w->lbuf_d + nn;
    w->lu_buf.uv = w->lbuf_d + nn + nv;
    w->lu_tape.n = n;
    return block;
}

static int rhs(wspace *w, double t, const double *x, double *out)
{
    return w->m->rhs(w->m->ctx, t, x, w->p, w->u, out) != 0 ? SYMODE_ERR_RHS : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* step replays (exact integrator expressions). y = step start, result in w->ynew.             */
/* ------------------------------------------------------------------------------------------ */
static int dp5_replay(wspace *w, const tape_step *s, const double *y)
{
    const int n = w->n;
    int i;
    const double t = s->t, h = s->h, tend = s->tend;
    double *k1 = w->Kbuf[0], *k2 = w->Kbuf[1], *k3 = w->Kbuf[2], *k4 = w->Kbuf[3],
           *k5 = w->Kbuf[4], *k6 = w->Kbuf[5];
    double *y1 = w->ynew;
    memcpy(w->Y[0], y, (size_t)n * sizeof(double));
    dp5_stage_times(t, h, tend, w->T);
    if (rhs(w, t, y, k1)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) w->Y[1][i] = y[i] + h * DP_A21 * k1[i];
    if (rhs(w, w->T[1], w->Y[1], k2)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) w->Y[2][i] = y[i] + h * (DP_A31 * k1[i] + DP_A32 * k2[i]);
    if (rhs(w, w->T[2], w->Y[2], k3)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        w->Y[3][i] = y[i] + h * (DP_A41 * k1[i] + DP_A42 * k2[i] + DP_A43 * k3[i]);
    if (rhs(w, w->T[3], w->Y[3], k4)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        w->Y[4][i] =
            y[i] + h * (DP_A51 * k1[i] + DP_A52 * k2[i] + DP_A53 * k3[i] + DP_A54 * k4[i]);
    if (rhs(w, w->T[4], w->Y[4], k5)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        w->Y[5][i] = y[i] + h * (DP_A61 * k1[i] + DP_A62 * k2[i] + DP_A63 * k3[i] +
                                 DP_A64 * k4[i] + DP_A65 * k5[i]);
    if (rhs(w, tend, w->Y[5], k6)) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        y1[i] = y[i] + h * (DP_A71 * k1[i] + DP_A73 * k3[i] + DP_A74 * k4[i] + DP_A75 * k5[i] +
                            DP_A76 * k6[i]);
    return 0;
}

static int ros_replay(wspace *w, const tape_step *s, const double *y)
{
    const int n = w->n;
    const symode_model *m = w->m;
    int i;
    const double t = s->t, h = s->h, tend = s->tend;
    double *ak1 = w->Kbuf[0], *ak2 = w->Kbuf[1], *ak3 = w->Kbuf[2], *ak4 = w->Kbuf[3],
           *ak5 = w->Kbuf[4], *ak6 = w->Kbuf[5], *fx = w->fx, *E = w->Ebuf, *dy1 = w->F[0],
           *ynew = w->ynew;
    int *qi = w->lbuf_i;
    const size_t nn = (size_t)n, nv = nn * (nn - 1) / 2 + 1;
    const symode_lu *f = &w->lu_buf;
    lu_store st;
    double fac;
    ros_hcoef hc;

    memcpy(w->Y[0], y, (size_t)n * sizeof(double));
    ros_stage_times(t, h, tend, w->T);
    if (rhs(w, t, y, dy1)) return SYMODE_ERR_RHS;
    if (!m->jac || m->jac(m->ctx, t, y, w->p, w->u, w->J) != 0) return SYMODE_ERR_RHS;
    w->delt = 0.0;
    if (w->tp->nonaut) {
        double delt = ros_time_increment(t, s->t1);
        w->delt = delt;
        if (rhs(w, t + delt, y, w->ftmp)) return SYMODE_ERR_RHS;
        for (i = 0; i < n; i++) fx[i] = (w->ftmp[i] - dy1[i]) / delt;
    } else {
        memset(fx, 0, (size_t)n * sizeof(double));
    }
    fac = 1.0 / (h * RS_GAMMA);
    iteration_matrix(n, fac, w->J, E);
    st.piv = qi;
    st.nz = qi + nn;
    st.lp = qi + 2 * nn;
    st.up = qi + 3 * nn + 1;
    st.li = qi + 4 * nn + 2;
    st.ui = qi + 4 * nn + 2 + nv;
    st.dinv = w->lbuf_d;
    st.lv = w->lbuf_d + nn;
    st.uv = w->lbuf_d + nn + nv;
    if (lu_factor(n, E, &st)) return SYMODE_ERR_SINGULAR;

    ros_step_coefficients(h, &hc);

    for (i = 0; i < n; i++) ak1[i] = dy1[i] + hc.d1 * fx[i];
    lu_solve(f, ak1);
    for (i = 0; i < n; i++) w->Y[1][i] = y[i] + RS_A21 * ak1[i];
    if (rhs(w, w->T[1], w->Y[1], w->F[1])) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) ak2[i] = w->F[1][i] + hc.c21 * ak1[i] + hc.d2 * fx[i];
    lu_solve(f, ak2);
    for (i = 0; i < n; i++) w->Y[2][i] = y[i] + RS_A31 * ak1[i] + RS_A32 * ak2[i];
    if (rhs(w, w->T[2], w->Y[2], w->F[2])) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++) ak3[i] = w->F[2][i] + hc.c31 * ak1[i] + hc.c32 * ak2[i] + hc.d3 * fx[i];
    lu_solve(f, ak3);
    for (i = 0; i < n; i++)
        w->Y[3][i] = y[i] + RS_A41 * ak1[i] + RS_A42 * ak2[i] + RS_A43 * ak3[i];
    if (rhs(w, w->T[3], w->Y[3], w->F[3])) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak4[i] = w->F[3][i] + hc.c41 * ak1[i] + hc.c42 * ak2[i] + hc.c43 * ak3[i] + hc.d4 * fx[i];
    lu_solve(f, ak4);
    for (i = 0; i < n; i++)
        w->Y[4][i] = y[i] + RS_A51 * ak1[i] + RS_A52 * ak2[i] + RS_A53 * ak3[i] + RS_A54 * ak4[i];
    if (rhs(w, tend, w->Y[4], w->F[4])) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak5[i] = w->F[4][i] + hc.c51 * ak1[i] + hc.c52 * ak2[i] + hc.c53 * ak3[i] + hc.c54 * ak4[i];
    lu_solve(f, ak5);
    for (i = 0; i < n; i++) w->Y[5][i] = w->Y[4][i] + ak5[i];
    if (rhs(w, tend, w->Y[5], w->F[5])) return SYMODE_ERR_RHS;
    for (i = 0; i < n; i++)
        ak6[i] = w->F[5][i] + hc.c61 * ak1[i] + hc.c62 * ak2[i] + hc.c63 * ak3[i] + hc.c64 * ak4[i] +
                 hc.c65 * ak5[i];
    lu_solve(f, ak6);
    for (i = 0; i < n; i++) ynew[i] = w->Y[5][i] + ak6[i];
    return 0;
}

static int step_replay(wspace *w, const tape_step *s, const double *y)
{
    int j;
    for (j = 0; j < 6; j++) w->K[j] = w->Kbuf[j];
    w->lu = &w->lu_buf;
    return s->method == SYMODE_STIFF ? ros_replay(w, s, y) : dp5_replay(w, s, y);
}

/* A stored step: stage values (and factors) from the tape, stage times and states recomputed with the
   replay's (= the integrator's) expressions. Does not set w->ynew. */
static void dp5_stored(wspace *w, const tape_step *s, const double *y)
{
    const int n = w->n;
    int i;
    const double t = s->t, h = s->h, tend = s->tend;
    const double *k1 = w->K[0], *k2 = w->K[1], *k3 = w->K[2], *k4 = w->K[3], *k5 = w->K[4];
    memcpy(w->Y[0], y, (size_t)n * sizeof(double));
    dp5_stage_times(t, h, tend, w->T);
    for (i = 0; i < n; i++) w->Y[1][i] = y[i] + h * DP_A21 * k1[i];
    for (i = 0; i < n; i++) w->Y[2][i] = y[i] + h * (DP_A31 * k1[i] + DP_A32 * k2[i]);
    for (i = 0; i < n; i++)
        w->Y[3][i] = y[i] + h * (DP_A41 * k1[i] + DP_A42 * k2[i] + DP_A43 * k3[i]);
    for (i = 0; i < n; i++)
        w->Y[4][i] =
            y[i] + h * (DP_A51 * k1[i] + DP_A52 * k2[i] + DP_A53 * k3[i] + DP_A54 * k4[i]);
    for (i = 0; i < n; i++)
        w->Y[5][i] = y[i] + h * (DP_A61 * k1[i] + DP_A62 * k2[i] + DP_A63 * k3[i] +
                                 DP_A64 * k4[i] + DP_A65 * k5[i]);
}

static void ros_stored(wspace *w, const tape_step *s, const double *y)
{
    const int n = w->n;
    int i;
    const double t = s->t, h = s->h, tend = s->tend;
    const double *ak1 = w->K[0], *ak2 = w->K[1], *ak3 = w->K[2], *ak4 = w->K[3], *ak5 = w->K[4];
    memcpy(w->Y[0], y, (size_t)n * sizeof(double));
    ros_stage_times(t, h, tend, w->T);
    w->delt = w->tp->nonaut ? ros_time_increment(t, s->t1) : 0.0;
    for (i = 0; i < n; i++) w->Y[1][i] = y[i] + RS_A21 * ak1[i];
    for (i = 0; i < n; i++) w->Y[2][i] = y[i] + RS_A31 * ak1[i] + RS_A32 * ak2[i];
    for (i = 0; i < n; i++)
        w->Y[3][i] = y[i] + RS_A41 * ak1[i] + RS_A42 * ak2[i] + RS_A43 * ak3[i];
    for (i = 0; i < n; i++)
        w->Y[4][i] = y[i] + RS_A51 * ak1[i] + RS_A52 * ak2[i] + RS_A53 * ak3[i] + RS_A54 * ak4[i];
    for (i = 0; i < n; i++) w->Y[5][i] = w->Y[4][i] + ak5[i];
}

/* Ask for the stored data of step k (read next by the reverse sweep, which walks the tape backwards, away
   from the hardware prefetchers' streams) while the current step is differentiated. */
static void prefetch_step(const symode_tape *tp, long k)
{
#if defined(__GNUC__)
    const tape_step *s = tp->steps + k;
    const char *a, *e;
    size_t n = (size_t)tp->nx;
    for (a = (const char *)s->sd, e = a + s->bytes; a < e; a += 64) __builtin_prefetch(a);
    for (a = (const char *)(tp->x + (size_t)k * n), e = a + n * sizeof(double); a < e; a += 64)
        __builtin_prefetch(a);
#else
    (void)tp;
    (void)k;
#endif
}

/* Stage data of step s (from y = its start) for the derivative code: from the tape or by a replay. */
int symode_tape_step_prepare(wspace *w, const tape_step *s, const double *y)
{
    const size_t n = (size_t)w->n;
    int j;
    if (!s->sd) return step_replay(w, s, y);
    for (j = 0; j < 6; j++) w->K[j] = s->sd + (size_t)j * n;
    if (s->method == SYMODE_STIFF) {
        const double *qd = s->sd + 6 * n;
        const int *qi = s->sp;
        symode_lu *f = &w->lu_tape;
        size_t nl = (size_t)qi[n + n]; /* lp[n] */
        f->piv = qi;
        f->lp = qi + n;
        f->up = qi + 2 * n + 1;
        f->li = qi + 3 * n + 2;
        f->ui = qi + 3 * n + 2 + nl;
        f->dinv = qd;
        f->lv = qd + n;
        f->uv = qd + n + nl;
        w->lu = f;
        ros_stored(w, s, y);
    } else {
        dp5_stored(w, s, y);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* adjoint of one step: on entry w->ybar = adjoint of y_new; on exit adjoint of y; w->gp += .  */
/* (step_replay must have been called for this step.)                                          */
/* ------------------------------------------------------------------------------------------ */
static int vjp_acc(wspace *w, double t, const double *x, const double *wt, double *xacc,
                   double scale_x)
{
    int i;
    const symode_derivs *d = w->d;
    if (d->vjp(w->m->ctx, t, x, w->p, w->u, wt, w->ox, w->op) != 0) return SYMODE_ERR_RHS;
    for (i = 0; i < w->n; i++) xacc[i] += scale_x * w->ox[i];
    for (i = 0; i < w->np; i++) w->gp[i] += w->op[i];
    return 0;
}

static int dp5_adjoint(wspace *w, const tape_step *s)
{
    const int n = w->n;
    const double h = s->h;
    int i, j, l;
    double *a = w->ybar, *Yb = w->w;
    for (j = 0; j < 6; j++)
        for (i = 0; i < n; i++) w->kbar[j][i] = h * DP_B[j] * a[i];
    /* a (= ybar) keeps the identity path y_new = y + ... */
    for (j = 5; j >= 0; j--) {
        const double *arow = dp_a_row(j);
        memset(Yb, 0, (size_t)n * sizeof(double));
        if (vjp_acc(w, w->T[j], w->Y[j], w->kbar[j], Yb, 1.0)) return SYMODE_ERR_RHS;
        for (i = 0; i < n; i++) a[i] += Yb[i];
        for (l = 0; l < j; l++) {
            double c = h * arow[l];
            for (i = 0; i < n; i++) w->kbar[l][i] += c * Yb[i];
        }
    }
    return 0;
}

static int ros_adjoint(wspace *w, const tape_step *s)
{
    const int n = w->n;
    const double h = s->h;
    const symode_derivs *d = w->d;
    int i, j, m, q;
    double *a = w->ybar, *Yb = w->w, *fxbar = w->fxbar, *abar_out = w->ftmp;
    double **Ybar = w->kbar; /* Ybar[m] = f_x(T_m, Y_m)^T rbar_m (m = 1..5) */
    memcpy(abar_out, a, (size_t)n * sizeof(double));
    for (j = 5; j >= 0; j--) {
        /* y_new = y + sum_l a_6l k_l + k_6 and Y_m = y + sum_{l<m} a_ml k_l, r_m = F_m + sum_{l<m} (c_ml / h) u_l:
           kbar_j = a_6j ybar_new + sum_{m>j} ((c_mj / h) rbar_m + a_mj Ybar_m), summed in one pass in the
           order the terms arise (m descending), then rbar_j = E^{-T} kbar_j */
        double *rb = w->rbar[j], coef[10];
        const double *src[10];
        const double c6 = j < 5 ? RS_A[5][j] : 1.0;
        int nt = 0;
        for (m = 5; m > j; m--) {
            coef[nt] = RS_CM[m][j] / h;
            src[nt++] = w->rbar[m];
            if (RS_A[m][j] != 0.0) {
                coef[nt] = RS_A[m][j];
                src[nt++] = Ybar[m];
            }
        }
        for (i = 0; i < n; i++) {
            double v = c6 * abar_out[i];
            for (q = 0; q < nt; q++) v += coef[q] * src[q][i];
            rb[i] = v;
        }
        lu_solve_t(w->lu, rb);
        if (j >= 1) { /* F_j = f(T_j, Y_j) */
            if (d->vjp(w->m->ctx, w->T[j], w->Y[j], w->p, w->u, rb, Ybar[j], w->op) != 0) return SYMODE_ERR_RHS;
            for (i = 0; i < w->np; i++) w->gp[i] += w->op[i];
        }
        if (!d->vjp2s) {
            /* J-dependence of the solve: rbar^T dJ k_j, stage by stage */
            if (j >= 1)
                for (i = 0; i < n; i++) a[i] += Ybar[j][i];
            if (d->vjp2(w->m->ctx, s->t, w->Y[0], w->p, w->u, w->K[j], rb, w->ox, w->op) != 0)
                return SYMODE_ERR_RHS;
            for (i = 0; i < n; i++) a[i] += w->ox[i];
            for (i = 0; i < w->np; i++) w->gp[i] += w->op[i];
        }
    }
    if (w->delt != 0.0) /* the df/dt terms h d_j f_t of stages 1-4 */
        for (i = 0; i < n; i++) {
            double v = 0.0;
            for (j = 5; j >= 0; j--)
                if (RS_DV[j] != 0.0) v += (h * RS_DV[j]) * w->rbar[j][i];
            fxbar[i] = v;
        }
    if (d->vjp2s) {
        for (i = 0; i < n; i++) { /* y enters every Y_m (m = 1..5) with weight 1 */
            double v = a[i];
            for (j = 5; j >= 1; j--) v += Ybar[j][i];
            a[i] = v;
        }
        /* V = [k_1 .. k_6], W = [rbar_1 .. rbar_6] (n x 6): the stage vectors are consecutive in memory
           (the tape's and the replay's), rbar too (ws_alloc) */
        const double *V = w->K[0];
        for (j = 1; j < 6; j++)
            if (w->K[j] != w->K[0] + (size_t)j * n) break;
        if (j < 6) {
            for (j = 0; j < 6; j++) memcpy(w->Kcat + (size_t)j * n, w->K[j], (size_t)n * sizeof(double));
            V = w->Kcat;
        }
        if (d->vjp2s(w->m->ctx, s->t, w->Y[0], w->p, w->u, V, w->rbar[0], w->ox, w->op) != 0)
            return SYMODE_ERR_RHS;
        for (i = 0; i < n; i++) a[i] += w->ox[i];
        for (i = 0; i < w->np; i++) w->gp[i] += w->op[i];
    }
    /* r_1 = f(t, y) + h d_1 f_t;  f_t = (f(t + delt, y) - f(t, y)) / delt */
    memcpy(Yb, w->rbar[0], (size_t)n * sizeof(double));
    if (w->delt != 0.0) {
        for (i = 0; i < n; i++) fxbar[i] /= w->delt;
        if (vjp_acc(w, s->t + w->delt, w->Y[0], fxbar, a, 1.0)) return SYMODE_ERR_RHS;
        for (i = 0; i < n; i++) Yb[i] -= fxbar[i];
    }
    if (vjp_acc(w, s->t, w->Y[0], Yb, a, 1.0)) return SYMODE_ERR_RHS;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* drivers                                                                                      */
/* ------------------------------------------------------------------------------------------ */
int symode_tape_check(const symode_tape *tape, const symode_model *m, const double *p,
                        const double *u)
{
    if (!tape || !tape->valid || !m || !m->rhs || m->nx != tape->nx || m->np != tape->np ||
        m->nu != tape->nu || (m->np > 0 && !p) || (m->nu > 0 && tape->nt > 1 && !u))
        return SYMODE_ERR_ARGS;
    if (tape->nstiff > 0 && (tape->jac_fd || !m->jac)) return SYMODE_ERR_ARGS;
    return 0;
}

const double *symode_tape_interval_u(const symode_model *m, const double *u, int i)
{
    return m->nu > 0 ? u + (size_t)i * m->nu : u;
}

int symode_tape_replay(const symode_tape *tape, const symode_model *m, const double *x0,
                       const double *p, const double *u, double *xout)
{
    wspace w;
    void *block;
    int rc = 0, i, n;
    long k = 0;
    double *y;
    if (symode_tape_check(tape, m, p, u) || !x0 || !xout) return SYMODE_ERR_ARGS;
    n = m->nx;
    memset(&w, 0, sizeof(w));
    block = symode_tape_ws_alloc(&w, n, m->np, 0);
    if (!block) return SYMODE_ERR_NOMEM;
    w.tp = tape; w.m = m; w.p = p; w.n = n; w.np = m->np; w.P = n + m->np;
    y = w.ybar; /* current state */
    memcpy(y, x0, (size_t)n * sizeof(double));
    memcpy(xout, x0, (size_t)n * sizeof(double));
    for (i = 0; i < tape->nt - 1 && rc == 0; i++) {
        w.u = symode_tape_interval_u(m, u, i);
        for (; k < tape->n && tape->steps[k].interval == i; k++) {
            rc = step_replay(&w, tape->steps + k, y);
            if (rc) break;
            memcpy(y, w.ynew, (size_t)n * sizeof(double));
        }
        memcpy(xout + (size_t)(i + 1) * n, y, (size_t)n * sizeof(double));
    }
    free(block);
    return rc;
}

int symode_tape_adjoint(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                        const double *p, const double *u, const double *lam, double *grad_x0,
                        double *grad_p)
{
    wspace w;
    void *block;
    int rc = 0, i, k2, n, np;
    long k;
    if (symode_tape_check(tape, m, p, u) || !d || !d->vjp || !lam || !grad_x0 ||
        (m->np > 0 && !grad_p) || (tape->nstiff > 0 && !d->vjp2 && !d->vjp2s))
        return SYMODE_ERR_ARGS;
    n = m->nx;
    np = m->np;
    memset(&w, 0, sizeof(w));
    block = symode_tape_ws_alloc(&w, n, np, 0);
    if (!block) return SYMODE_ERR_NOMEM;
    w.tp = tape; w.m = m; w.d = d; w.p = p; w.n = n; w.np = np; w.P = n + np;
    memcpy(w.ybar, lam + (size_t)(tape->nt - 1) * n, (size_t)n * sizeof(double));
    k = tape->n - 1;
    for (i = tape->nt - 2; i >= 0 && rc == 0; i--) {
        w.u = symode_tape_interval_u(m, u, i);
        for (; k >= 0 && tape->steps[k].interval == i; k--) {
            const tape_step *s = tape->steps + k;
            if (k > 0) prefetch_step(tape, k - 1);
            rc = symode_tape_step_prepare(&w, s, tape->x + (size_t)k * n);
            if (rc) break;
            rc = s->method == SYMODE_STIFF ? ros_adjoint(&w, s) : dp5_adjoint(&w, s);
            if (rc) break;
        }
        for (k2 = 0; k2 < n; k2++) w.ybar[k2] += lam[(size_t)i * n + k2];
    }
    if (rc == 0) {
        memcpy(grad_x0, w.ybar, (size_t)n * sizeof(double));
        if (np > 0) memcpy(grad_p, w.gp, (size_t)np * sizeof(double));
    }
    free(block);
    return rc;
}
