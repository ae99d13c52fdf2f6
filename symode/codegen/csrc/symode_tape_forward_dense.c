/*
 * symode_tape_forward_dense.c -- the reference implementation of the discrete forward sensitivities
 * (symode_tape_forward_dense, see symode_forward.h), kept to check and time symode_tape_forward.c
 * against: S = d x(t_i) / d[x0, p] (n x (n + np) per output time), propagated step by step
 * through the same DOPRI5 / RODAS4 stage formulas as the integrator (symode_tape.c has the formulas,
 * the stage preparation and the adjoint):
 *   DOPRI5: dY_j = S + h sum_{l<j} a_jl dK_l,  dK_j = Jx(T_j, Y_j) dY_j + [0 | Jp(T_j, Y_j)];
 *   RODAS4: dk_i = E^{-1} (dr_i + d(J) k_i), dr_i = d f(T_i, Y_i) + sum_{j<i} (c_ij / h) dk_j (+ df_t).
 * Every product dense: Jx (n x n) and [0 | Jp] at each stage times all n + np columns.
 */
#include "symode_forward.h"
#include "symode_tape_impl.h"
#include "symode_methods.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* forward sensitivities of one step: S (n x P) -> w->dY holds the new S on exit              */
/* ------------------------------------------------------------------------------------------ */
static int full_jac(wspace *w, double t, const double *x, double *Jx, double *Jp)
{
    const symode_model *m = w->m;
    const symode_derivs *d = w->d;
    int i, j, n = w->n, np = w->np;
    if (m->jac && (np == 0 || d->jac_p)) {
        if (m->jac(m->ctx, t, x, w->p, w->u, Jx) != 0) return SYMODE_ERR_RHS;
        if (np > 0 && d->jac_p(m->ctx, t, x, w->p, w->u, Jp) != 0) return SYMODE_ERR_RHS;
        return 0;
    }
    if (!d->vjp) return SYMODE_ERR_ARGS;
    for (i = 0; i < n; i++) {
        memset(w->colv, 0, (size_t)n * sizeof(double));
        w->colv[i] = 1.0;
        if (d->vjp(m->ctx, t, x, w->p, w->u, w->colv, w->ox, w->op) != 0) return SYMODE_ERR_RHS;
        for (j = 0; j < n; j++) Jx[i + (size_t)j * n] = w->ox[j];
        for (j = 0; j < np; j++) Jp[i + (size_t)j * n] = w->op[j];
    }
    return 0;
}

/* out (n x P) = Jx X + [0 | Jp] */
static void jac_apply(int n, int np, const double *Jx, const double *Jp, const double *X,
                      double *out)
{
    int P = n + np, c, i, k;
    for (c = 0; c < P; c++) {
        double *oc = out + (size_t)c * n;
        const double *xc = X + (size_t)c * n;
        memset(oc, 0, (size_t)n * sizeof(double));
        for (k = 0; k < n; k++) {
            double xk = xc[k];
            const double *jk = Jx + (size_t)k * n;
            for (i = 0; i < n; i++) oc[i] += jk[i] * xk;
        }
        if (c >= n)
            for (i = 0; i < n; i++) oc[i] += Jp[i + (size_t)(c - n) * n];
    }
}

static int dp5_forward(wspace *w, const tape_step *s, double *S)
{
    const int n = w->n;
    const size_t NP = (size_t)n * w->P;
    const double h = s->h;
    int j, l;
    size_t q;
    for (j = 0; j < 6; j++) {
        const double *arow = dp_a_row(j);
        double *dY = w->dY;
        memcpy(dY, S, NP * sizeof(double));
        for (l = 0; l < j; l++) {
            double c = h * arow[l];
            if (c != 0.0)
                for (q = 0; q < NP; q++) dY[q] += c * w->dK[l][q];
        }
        if (full_jac(w, w->T[j], w->Y[j], w->Jx2, w->Jp2)) return SYMODE_ERR_RHS;
        jac_apply(n, w->np, w->Jx2, w->Jp2, dY, w->dK[j]);
    }
    for (j = 0; j < 6; j++) {
        double c = h * DP_B[j];
        if (c != 0.0)
            for (q = 0; q < NP; q++) S[q] += c * w->dK[j][q];
    }
    return 0;
}

static int ros_forward(wspace *w, const tape_step *s, double *S)
{
    const int n = w->n, np = w->np, P = w->P;
    const size_t NP = (size_t)n * P;
    const double h = s->h;
    const symode_derivs *d = w->d;
    int j, l, c, i;
    size_t q;
    double *G = w->G, *dfx = w->dfx;
    /* G = d f(t, y) */
    if (full_jac(w, s->t, w->Y[0], w->Jx2, w->Jp2)) return SYMODE_ERR_RHS;
    jac_apply(n, np, w->Jx2, w->Jp2, S, G);
    if (w->delt != 0.0) {
        if (full_jac(w, s->t + w->delt, w->Y[0], w->Jx2, w->Jp2)) return SYMODE_ERR_RHS;
        jac_apply(n, np, w->Jx2, w->Jp2, S, w->Gt);
        for (q = 0; q < NP; q++) dfx[q] = (w->Gt[q] - G[q]) / w->delt;
    }
    for (j = 0; j < 6; j++) {
        double *dr = w->dK[j];
        if (j == 0) {
            memcpy(dr, G, NP * sizeof(double));
        } else {
            double *dY = w->dY;
            memcpy(dY, S, NP * sizeof(double));
            for (l = 0; l < j; l++) {
                double cc = RS_A[j][l];
                if (cc != 0.0)
                    for (q = 0; q < NP; q++) dY[q] += cc * w->dK[l][q];
            }
            if (full_jac(w, w->T[j], w->Y[j], w->Jx2, w->Jp2)) return SYMODE_ERR_RHS;
            jac_apply(n, np, w->Jx2, w->Jp2, dY, dr);
        }
        for (l = 0; l < j; l++) {
            double cc = RS_CM[j][l] / h;
            for (q = 0; q < NP; q++) dr[q] += cc * w->dK[l][q];
        }
        if (RS_DV[j] != 0.0 && w->delt != 0.0) {
            double cc = h * RS_DV[j];
            for (q = 0; q < NP; q++) dr[q] += cc * dfx[q];
        }
        /* + dJ k_j, then solve. With vjp2: the n x P matrix M = [d(J k_j)/dx | d(J k_j)/dp] by rows
           (n reverse products e_i^T d(J k_j)), then dJ k_j for column c = Mx S_c (+ Mp e_{c-n});
           n calls instead of P forward products (jvp2), the same derivative. */
        if (d->vjp2) {
            for (i = 0; i < n; i++) {
                int a;
                memset(w->w, 0, (size_t)n * sizeof(double));
                w->w[i] = 1.0;
                if (d->vjp2(w->m->ctx, s->t, w->Y[0], w->p, w->u, w->K[j], w->w, w->ox, w->op) != 0)
                    return SYMODE_ERR_RHS;
                for (a = 0; a < n; a++) w->Mx[i + (size_t)a * n] = w->ox[a];
                for (a = 0; a < np; a++) w->Mp[i + (size_t)a * n] = w->op[a];
            }
        }
        for (c = 0; c < P; c++) {
            double *col = dr + (size_t)c * n;
            if (d->vjp2) {
                const double *sc = S + (size_t)c * n;
                int a;
                for (a = 0; a < n; a++) {
                    const double *ma = w->Mx + (size_t)a * n;
                    double sa = sc[a];
                    for (i = 0; i < n; i++) col[i] += ma[i] * sa;
                }
                if (c >= n)
                    for (i = 0; i < n; i++) col[i] += w->Mp[i + (size_t)(c - n) * n];
            } else {
                const double *dpp = NULL;
                if (c >= n) {
                    memset(w->ep, 0, (size_t)np * sizeof(double));
                    w->ep[c - n] = 1.0;
                    dpp = w->ep;
                }
                if (d->jvp2(w->m->ctx, s->t, w->Y[0], w->p, w->u, w->K[j], S + (size_t)c * n, dpp,
                            w->colv) != 0)
                    return SYMODE_ERR_RHS;
                for (i = 0; i < n; i++) col[i] += w->colv[i];
            }
        }
        lu_solve_cols(w->lu, dr, P);
    }
    /* S_new = S + sum_j a_6j dk_j + dk_6 */
    for (j = 0; j < 5; j++) {
        double cc = RS_A[5][j];
        for (q = 0; q < NP; q++) S[q] += cc * w->dK[j][q];
    }
    for (q = 0; q < NP; q++) S[q] += w->dK[5][q];
    return 0;
}

int symode_tape_forward_dense(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                        const double *p, const double *u, double *S_out)
{
    wspace w;
    void *block;
    int rc = 0, i, n, np, P;
    long k = 0;
    size_t NP;
    double *S;
    if (symode_tape_check(tape, m, p, u) || !d || !S_out || (tape->nstiff > 0 && !d->jvp2 && !d->vjp2) ||
        ((!m->jac || (m->np > 0 && !d->jac_p)) && !d->vjp))
        return SYMODE_ERR_ARGS;
    n = m->nx;
    np = m->np;
    P = n + np;
    NP = (size_t)n * P;
    memset(&w, 0, sizeof(w));
    block = symode_tape_ws_alloc(&w, n, np, 1);
    if (!block) return SYMODE_ERR_NOMEM;
    w.tp = tape; w.m = m; w.d = d; w.p = p; w.n = n; w.np = np; w.P = P;
    S = S_out; /* S_out block 0 = [I | 0]; each block is propagated from the previous one */
    memset(S, 0, NP * sizeof(double));
    for (i = 0; i < n; i++) S[i + (size_t)i * n] = 1.0;
    for (i = 0; i < tape->nt - 1 && rc == 0; i++) {
        double *Snext = S_out + (size_t)(i + 1) * NP;
        memcpy(Snext, S_out + (size_t)i * NP, NP * sizeof(double));
        w.u = symode_tape_interval_u(m, u, i);
        for (; k < tape->n && tape->steps[k].interval == i; k++) {
            const tape_step *s = tape->steps + k;
            rc = symode_tape_step_prepare(&w, s, tape->x + (size_t)k * n);
            if (rc) break;
            rc = s->method == SYMODE_STIFF ? ros_forward(&w, s, Snext) : dp5_forward(&w, s, Snext);
            if (rc) break;
        }
    }
    free(block);
    return rc;
}
