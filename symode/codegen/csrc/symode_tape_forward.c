/*
 * symode_tape_forward.c -- discrete forward sensitivities over a recorded tape: the seeded directions of
 * symode_forward.h (G = S D for a seed D, k columns) and symode_tape_forward (symode_tape.h: the seed I,
 * all nx + np columns). The stage formulas are those of symode_tape.c (which also prepares each step's
 * stage states, stage values and factors); see symode_forward.h for the derivative of a step.
 *
 * Every matrix product runs over a compressed-column pattern: the model's sparse Jacobians
 * (d->sparse: the nonzeros of Jx, Jp and of the second-order d(Jx v)/dx, d(Jx v)/dp), or full
 * patterns over the dense Jacobians and the second-order rows from vjp2. Directions are stored
 * row-major (G[i * k + c]), so the innermost loops run over the k directions with unit stride. The
 * solves with RODAS4's E use the compressed LU factors of the step (the same operations as lu_solve
 * per direction).
 */
#include "symode_forward.h"
#include "symode_tape_impl.h"
#include "symode_methods.h"

#include <stdlib.h>
#include <string.h>

/* A compressed-column pattern: column j has the rows row[colind[j] .. colind[j+1] - 1]. */
typedef struct {
    int nrow, ncol;
    const int *colind, *row;
} ccs;

/* The product Y += A Dp of a matrix A with a fixed pattern and the fixed parameter directions Dp, as the
   list of its terms: Y[at[t]] += a[q[t]] * val[t] (t < nt), in the order of the loops over A's columns j,
   A's nonzeros (i, j) and Dp's nonzeros (j, c). A seed's parameter directions are mostly zero (one
   estimated parameter per model parameter; [0 | I] for all of S), so this costs about nnz(A) a step. */
typedef struct {
    size_t nt;
    const int *q;
    const size_t *at;
    const double *val;
} dprod;

typedef struct {
    wspace w;                      /* the current step's stage data (symode_tape_step_prepare) */
    int k;                         /* number of directions */
    size_t NK;                     /* n * k */
    const double *Dp;              /* np x k: the parameter directions */
    dprod jpd, hpd;                /* Jp Dp and d(Jx v)/dp Dp */
    const symode_sparse_derivs *sd; /* NULL: dense Jacobians */
    ccs jx, jp, hx, hp;            /* patterns of Jx, Jp, d(Jx v)/dx, d(Jx v)/dp */
    double *vjx, *vjp, *vhx, *vhp; /* their values at the current point */
    double *dK[6], *dY, *Gt, *dfx; /* n x k */
    double *col, *colp, *out;      /* dense fallbacks: one direction / unit vector (n, np, n) */
} fws;

/* ------------------------------------------------------------------------------------------ */
/* products                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* y += a x (N values). Unrolled by four so that compilers pair the operations into vector instructions at
   -O2 (the same operations, the same numbers). */
static inline void axpy(size_t N, double a, const double *restrict x, double *restrict y)
{
    size_t q = 0;
    for (; q + 4 <= N; q += 4) {
        y[q] += a * x[q];
        y[q + 1] += a * x[q + 1];
        y[q + 2] += a * x[q + 2];
        y[q + 3] += a * x[q + 3];
    }
    for (; q < N; q++) y[q] += a * x[q];
}

/* Y (a->nrow x k) += A X (X: a->ncol x k), row-major; zero entries of A are skipped (exact no-ops). (Row by
   row with eight directions kept in registers was slower at k = 29, nx = 25.) */
static void ccs_mul_add(const ccs *a, const double *v, int k, const double *X, double *Y)
{
    int j, q;
    for (j = 0; j < a->ncol; j++)
        for (q = a->colind[j]; q < a->colind[j + 1]; q++)
            if (v[q] != 0.0) axpy((size_t)k, v[q], X + (size_t)j * k, Y + (size_t)a->row[q] * k);
}

static void dprod_apply(const dprod *d, const double *a, double *Y)
{
    size_t t;
    for (t = 0; t < d->nt; t++) Y[d->at[t]] += a[d->q[t]] * d->val[t];
}

/* out = base + sum_{l < m} c[l] X[l] (N values) in one pass: per value the operations of the sequence of
   axpy's (base, then + c[0] X[0], + c[1] X[1], ...), so the same numbers; out may be base. */
static void combine(size_t N, int m, const double *c, double *const *X, const double *base, double *out)
{
    size_t q = 0;
    int l;
    for (; q + 4 <= N; q += 4) {
        double y0 = base[q], y1 = base[q + 1], y2 = base[q + 2], y3 = base[q + 3];
        for (l = 0; l < m; l++) {
            const double *x = X[l] + q, a = c[l];
            y0 += a * x[0];
            y1 += a * x[1];
            y2 += a * x[2];
            y3 += a * x[3];
        }
        out[q] = y0;
        out[q + 1] = y1;
        out[q + 2] = y2;
        out[q + 3] = y3;
    }
    for (; q < N; q++) {
        double y = base[q];
        for (l = 0; l < m; l++) y += c[l] * X[l][q];
        out[q] = y;
    }
}

/* Solve E X = B for the k columns of B (n x k, row-major) with the compressed factors of E: per column the
   operations of lu_solve (symode_methods.h), so the same numbers. */
static void lu_solve_rows(const symode_lu *f, double *B, int k)
{
    const int n = f->n;
    const int *piv = f->piv, *lp = f->lp, *li = f->li, *up = f->up, *ui = f->ui;
    const double *lv = f->lv, *uv = f->uv, *dinv = f->dinv;
    const size_t K = (size_t)k;
    int r, q;
    size_t c;
    for (r = 0; r < n; r++)
        if (piv[r] != r) {
            double *restrict a = B + (size_t)r * K, *restrict b = B + (size_t)piv[r] * K;
            for (c = 0; c < K; c++) { double tmp = a[c]; a[c] = b[c]; b[c] = tmp; }
        }
    for (r = 0; r < n; r++) /* forward: L Y = P B (y - l x == y + (-l) x exactly) */
        for (q = lp[r]; q < lp[r + 1]; q++) axpy(K, -lv[q], B + (size_t)r * K, B + (size_t)li[q] * K);
    for (r = n - 1; r >= 0; r--) { /* backward: U X = Y */
        double *restrict br = B + (size_t)r * K, d = dinv[r];
        for (c = 0; c < K; c++) br[c] *= d;
        for (q = up[r]; q < up[r + 1]; q++) axpy(K, -uv[q], br, B + (size_t)ui[q] * K);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the Jacobians at a point                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Dense Jx, Jp (column-major = the values of the full patterns): m->jac and d->jac_p, or row by row from
   d->vjp. */
static int dense_jac(fws *f, double t, const double *x)
{
    wspace *w = &f->w;
    const symode_model *m = w->m;
    const symode_derivs *d = w->d;
    int i, j, n = w->n, np = w->np;
    if (m->jac && (np == 0 || d->jac_p)) {
        if (m->jac(m->ctx, t, x, w->p, w->u, f->vjx) != 0) return SYMODE_ERR_RHS;
        if (np > 0 && d->jac_p(m->ctx, t, x, w->p, w->u, f->vjp) != 0) return SYMODE_ERR_RHS;
        return 0;
    }
    for (i = 0; i < n; i++) {
        memset(f->col, 0, (size_t)n * sizeof(double));
        f->col[i] = 1.0;
        if (d->vjp(m->ctx, t, x, w->p, w->u, f->col, w->ox, w->op) != 0) return SYMODE_ERR_RHS;
        for (j = 0; j < n; j++) f->vjx[i + (size_t)j * n] = w->ox[j];
        for (j = 0; j < np; j++) f->vjp[i + (size_t)j * n] = w->op[j];
    }
    return 0;
}

/* out (n x k) = Jx(t, x) X + Jp(t, x) Dp */
static int first_order(fws *f, double t, const double *x, const double *X, double *out)
{
    wspace *w = &f->w;
    if (f->sd) {
        if (f->sd->jac(w->m->ctx, t, x, w->p, w->u, f->vjx, f->vjp) != 0) return SYMODE_ERR_RHS;
    } else if (dense_jac(f, t, x)) {
        return SYMODE_ERR_RHS;
    }
    memset(out, 0, f->NK * sizeof(double));
    ccs_mul_add(&f->jx, f->vjx, f->k, X, out);
    dprod_apply(&f->jpd, f->vjp, out);
    return 0;
}

/* out (n x k) += d(Jx v)/dx G + d(Jx v)/dp Dp at the step start (t, y): RODAS4's derivative of J k_j. */
static int second_order(fws *f, double t, const double *v, const double *G, double *out)
{
    wspace *w = &f->w;
    const symode_derivs *d = w->d;
    void *ctx = w->m->ctx;
    const double *y = w->Y[0];
    int n = w->n, np = w->np, k = f->k, i, a, c;
    if (f->sd) {
        if (f->sd->hes(ctx, t, y, w->p, w->u, v, f->vhx, f->vhp) != 0) return SYMODE_ERR_RHS;
    } else if (d->vjp2) { /* the matrices by rows: e_i^T d(Jx v)/d[x, p], n reverse products */
        for (i = 0; i < n; i++) {
            memset(f->out, 0, (size_t)n * sizeof(double));
            f->out[i] = 1.0;
            if (d->vjp2(ctx, t, y, w->p, w->u, v, f->out, w->ox, w->op) != 0) return SYMODE_ERR_RHS;
            for (a = 0; a < n; a++) f->vhx[i + (size_t)a * n] = w->ox[a];
            for (a = 0; a < np; a++) f->vhp[i + (size_t)a * n] = w->op[a];
        }
    } else { /* one forward second-order product per direction */
        for (c = 0; c < k; c++) {
            for (i = 0; i < n; i++) f->col[i] = G[(size_t)i * k + c];
            for (a = 0; a < np; a++) f->colp[a] = f->Dp[(size_t)a * k + c];
            if (d->jvp2(ctx, t, y, w->p, w->u, v, f->col, np > 0 ? f->colp : NULL, f->out) != 0)
                return SYMODE_ERR_RHS;
            for (i = 0; i < n; i++) out[(size_t)i * k + c] += f->out[i];
        }
        return 0;
    }
    ccs_mul_add(&f->hx, f->vhx, k, G, out);
    dprod_apply(&f->hpd, f->vhp, out);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* one step: G (n x k) at the step start -> at its end                                         */
/* ------------------------------------------------------------------------------------------ */
static int dp5_forward(fws *f, const tape_step *s, double *G)
{
    wspace *w = &f->w;
    const size_t NK = f->NK;
    const double h = s->h;
    double c[6], *X[6];
    int j, l, m;
    for (j = 0; j < 6; j++) {
        const double *arow = dp_a_row(j);
        for (l = m = 0; l < j; l++)
            if (h * arow[l] != 0.0) { c[m] = h * arow[l]; X[m++] = f->dK[l]; }
        if (j > 0) combine(NK, m, c, X, G, f->dY);
        if (first_order(f, w->T[j], w->Y[j], j > 0 ? f->dY : G, f->dK[j])) return SYMODE_ERR_RHS;
    }
    for (j = m = 0; j < 6; j++)
        if (h * DP_B[j] != 0.0) { c[m] = h * DP_B[j]; X[m++] = f->dK[j]; }
    combine(NK, m, c, X, G, G);
    return 0;
}

static int ros_forward(fws *f, const tape_step *s, double *G)
{
    wspace *w = &f->w;
    const size_t NK = f->NK;
    const double h = s->h;
    double c[6], *X[6];
    int j, l, m;
    size_t q;
    /* stage 1: dr_1 = d f(t, y) (+ h d_1 df_t) */
    if (first_order(f, s->t, w->Y[0], G, f->dK[0])) return SYMODE_ERR_RHS;
    if (w->delt != 0.0) {
        if (first_order(f, s->t + w->delt, w->Y[0], G, f->Gt)) return SYMODE_ERR_RHS;
        for (q = 0; q < NK; q++) f->dfx[q] = (f->Gt[q] - f->dK[0][q]) / w->delt;
    }
    for (j = 0; j < 6; j++) {
        double *dr = f->dK[j];
        if (j > 0) { /* dY_j = G + sum_l a_jl dk_l;  dr_j = d f(T_j, Y_j) */
            for (l = m = 0; l < j; l++)
                if (RS_A[j][l] != 0.0) { c[m] = RS_A[j][l]; X[m++] = f->dK[l]; }
            combine(NK, m, c, X, G, f->dY);
            if (first_order(f, w->T[j], w->Y[j], f->dY, dr)) return SYMODE_ERR_RHS;
        }
        /* + sum_l (c_jl / h) dk_l + h d_j df_t + d(J k_j) */
        for (l = m = 0; l < j; l++) { c[m] = RS_CM[j][l] / h; X[m++] = f->dK[l]; }
        if (RS_DV[j] != 0.0 && w->delt != 0.0) { c[m] = h * RS_DV[j]; X[m++] = f->dfx; }
        combine(NK, m, c, X, dr, dr);
        if (second_order(f, s->t, w->K[j], G, dr)) return SYMODE_ERR_RHS;
        lu_solve_rows(w->lu, dr, f->k);
    }
    /* G_new = G + sum_j a_6j dk_j + dk_6 */
    for (j = 0; j < 5; j++) { c[j] = RS_A[5][j]; X[j] = f->dK[j]; }
    c[5] = 1.0;
    X[5] = f->dK[5];
    combine(NK, 6, c, X, G, G);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* work space                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* The length of pattern `which` (sparse) or of the full nrow x ncol pattern. */
static int pattern_len(const symode_sparse_derivs *sd, int which, int nrow, int ncol)
{
    return sd ? sd->sparsity(which, NULL) : 3 + ncol + nrow * ncol;
}

/* The pattern into buf (len ints) as an nrow x ncol ccs: from sd (checked), or the full pattern. */
static int load_pattern(const symode_sparse_derivs *sd, int which, int nrow, int ncol, int *buf, int len,
                        ccs *a)
{
    int j, q, nnz = len - 3 - ncol;
    if (nnz < 0) return SYMODE_ERR_ARGS;
    if (sd) {
        if (sd->sparsity(which, buf) != len || buf[0] != nrow || buf[1] != ncol) return SYMODE_ERR_ARGS;
    } else {
        buf[0] = nrow;
        buf[1] = ncol;
        for (j = 0; j <= ncol; j++) buf[2 + j] = j * nrow;
        for (q = 0; q < nnz; q++) buf[3 + ncol + q] = q % nrow;
    }
    a->nrow = nrow;
    a->ncol = ncol;
    a->colind = buf + 2;
    a->row = buf + 3 + ncol;
    if (a->colind[0] != 0 || a->colind[ncol] != nnz) return SYMODE_ERR_ARGS;
    for (j = 0; j < ncol; j++)
        if (a->colind[j + 1] < a->colind[j]) return SYMODE_ERR_ARGS;
    for (q = 0; q < nnz; q++)
        if (a->row[q] < 0 || a->row[q] >= nrow) return SYMODE_ERR_ARGS;
    return 0;
}

/* The nonzeros of Dp (np x k, row-major) by rows into ptr (np + 1), col and val. */
static void dp_rows(const double *Dp, int np, int k, int *ptr, int *col, double *val)
{
    int j, c, nz = 0;
    for (j = 0; j < np; j++) {
        ptr[j] = nz;
        for (c = 0; c < k; c++)
            if (Dp[(size_t)j * k + c] != 0.0) {
                col[nz] = c;
                val[nz++] = Dp[(size_t)j * k + c];
            }
    }
    ptr[np] = nz;
}

/* The terms of A Dp (dprod) from the nonzeros of Dp by rows (dp_rows); with q NULL only counts them. */
static size_t dprod_build(const ccs *a, int k, const int *ptr, const int *col, const double *val, int *q,
                          size_t *at, double *v)
{
    size_t nt = 0;
    int j, e, r;
    for (j = 0; j < a->ncol; j++)
        for (e = a->colind[j]; e < a->colind[j + 1]; e++)
            for (r = ptr[j]; r < ptr[j + 1]; r++, nt++)
                if (q) {
                    q[nt] = e;
                    at[nt] = (size_t)a->row[e] * (size_t)k + (size_t)col[r];
                    v[nt] = val[r];
                }
    return nt;
}

/* The forward arrays in one block (*block; free it) besides the sweep's own (symode_tape_ws_alloc), with
   the patterns loaded, and the terms of Jp Dp and d(Jx v)/dp Dp in a second one (*terms). */
static int fws_alloc(fws *f, int n, int np, int k, void **block, void **terms)
{
    const symode_sparse_derivs *sd = f->sd;
    int len[4], i, rc, *qi, *ptr, *col;
    size_t nd, ni = 0, nn = (size_t)n, npp = np > 0 ? (size_t)np : 1, NK = nn * (size_t)k, nz[4], ndp = 0, q, nt[2];
    double *qd, *val;
    ccs *pat[4];
    dprod *dpr[2];
    pat[0] = &f->jx; pat[1] = &f->jp; pat[2] = &f->hx; pat[3] = &f->hp;
    len[0] = pattern_len(sd, SYMODE_SPARSE_JX, n, n);
    len[1] = pattern_len(sd, SYMODE_SPARSE_JP, n, np);
    len[2] = sd ? pattern_len(sd, SYMODE_SPARSE_HX, n, n) : 0; /* dense: the patterns of Jx, Jp */
    len[3] = sd ? pattern_len(sd, SYMODE_SPARSE_HP, n, np) : 0;
    for (i = 0; i < 4; i++) {
        if (len[i] < 0) return SYMODE_ERR_ARGS;
        ni += (size_t)len[i];
        nz[i] = (size_t)(len[i > 1 && !sd ? i - 2 : i] - 3 - (i % 2 ? np : n)) + 1;
    }
    for (q = 0; q < (size_t)np * (size_t)k; q++) ndp += f->Dp[q] != 0.0;
    nd = 9 * NK + nz[0] + nz[1] + nz[2] + nz[3] + 2 * nn + npp + ndp + 1;
    ni += (size_t)np + 1 + ndp;
    *block = malloc(nd * sizeof(double) + ni * sizeof(int));
    if (!*block) return SYMODE_ERR_NOMEM;
    qd = (double *)*block;
    for (i = 0; i < 6; i++) { f->dK[i] = qd; qd += NK; }
    f->dY = qd; qd += NK;
    f->Gt = qd; qd += NK;
    f->dfx = qd; qd += NK;
    f->vjx = qd; qd += nz[0];
    f->vjp = qd; qd += nz[1];
    f->vhx = qd; qd += nz[2];
    f->vhp = qd; qd += nz[3];
    f->col = qd; qd += nn;
    f->out = qd; qd += nn;
    f->colp = qd; qd += npp;
    val = qd; qd += ndp + 1;
    qi = (int *)(void *)qd;
    for (i = 0; i < 4; i++) {
        if (i > 1 && !sd) {
            *pat[i] = *pat[i - 2];
            continue;
        }
        if ((rc = load_pattern(sd, i, n, i % 2 ? np : n, qi, len[i], pat[i]))) return rc;
        qi += len[i];
    }
    ptr = qi;
    col = qi + np + 1;
    dp_rows(f->Dp, np, k, ptr, col, val);
    /* the terms of Jp Dp and d(Jx v)/dp Dp (dense: one list, the patterns are the same) */
    dpr[0] = &f->jpd; dpr[1] = &f->hpd;
    nt[0] = dprod_build(&f->jp, k, ptr, col, val, NULL, NULL, NULL);
    nt[1] = sd ? dprod_build(&f->hp, k, ptr, col, val, NULL, NULL, NULL) : 0;
    *terms = malloc((nt[0] + nt[1] + 1) * (sizeof(int) + sizeof(size_t) + sizeof(double)));
    if (!*terms) return SYMODE_ERR_NOMEM;
    qd = (double *)*terms;
    {
        size_t *qa = (size_t *)(void *)(qd + nt[0] + nt[1] + 1);
        int *qq = (int *)(void *)(qa + nt[0] + nt[1] + 1);
        for (i = 0; i < (sd ? 2 : 1); i++) {
            dprod_build(i ? &f->hp : &f->jp, k, ptr, col, val, qq, qa, qd);
            dpr[i]->nt = nt[i];
            dpr[i]->q = qq;
            dpr[i]->at = qa;
            dpr[i]->val = qd;
            qq += nt[i];
            qa += nt[i];
            qd += nt[i];
        }
    }
    if (!sd) f->hpd = f->jpd;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* drivers                                                                                      */
/* ------------------------------------------------------------------------------------------ */
int symode_tape_forward_seeded(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                               const double *p, const double *u, int k, const double *D, double *G_out)
{
    fws f;
    void *base, *block = NULL, *terms = NULL;
    int rc, i, n, np;
    long s = 0;
    const symode_sparse_derivs *sd;
    if (symode_tape_check(tape, m, p, u) || !d || !D || !G_out || k < 1) return SYMODE_ERR_ARGS;
    sd = d->sparse;
    if (sd && (!sd->jac || !sd->sparsity || (tape->nstiff > 0 && !sd->hes))) return SYMODE_ERR_ARGS;
    if (!sd && ((tape->nstiff > 0 && !d->jvp2 && !d->vjp2) ||
                ((!m->jac || (m->np > 0 && !d->jac_p)) && !d->vjp)))
        return SYMODE_ERR_ARGS;
    n = m->nx;
    np = m->np;
    memset(&f, 0, sizeof(f));
    base = symode_tape_ws_alloc(&f.w, n, np, 0);
    if (!base) return SYMODE_ERR_NOMEM;
    f.w.tp = tape; f.w.m = m; f.w.d = d; f.w.p = p; f.w.n = n; f.w.np = np; f.w.P = n + np;
    f.k = k;
    f.NK = (size_t)n * (size_t)k;
    f.sd = sd;
    f.Dp = D + f.NK;
    rc = fws_alloc(&f, n, np, k, &block, &terms);
    if (rc == 0) memcpy(G_out, D, f.NK * sizeof(double)); /* G(t_0) = D_x; each block from the previous */
    for (i = 0; i < tape->nt - 1 && rc == 0; i++) {
        double *G = G_out + (size_t)(i + 1) * f.NK;
        memcpy(G, G_out + (size_t)i * f.NK, f.NK * sizeof(double));
        f.w.u = symode_tape_interval_u(m, u, i);
        for (; s < tape->n && tape->steps[s].interval == i; s++) {
            const tape_step *st = tape->steps + s;
            rc = symode_tape_step_prepare(&f.w, st, tape->x + (size_t)s * n);
            if (rc) break;
            rc = st->method == SYMODE_STIFF ? ros_forward(&f, st, G) : dp5_forward(&f, st, G);
            if (rc) break;
        }
    }
    free(terms);
    free(block);
    free(base);
    return rc;
}

int symode_tape_forward(const symode_tape *tape, const symode_model *m, const symode_derivs *d,
                        const double *p, const double *u, double *S_out)
{
    int rc, i, c, t, n, P;
    double *I;
    if (symode_tape_check(tape, m, p, u) || !S_out) return SYMODE_ERR_ARGS;
    n = m->nx;
    P = n + m->np;
    I = (double *)calloc((size_t)P * (size_t)P, sizeof(double));
    if (!I) return SYMODE_ERR_NOMEM;
    for (i = 0; i < P; i++) I[(size_t)i * P + i] = 1.0;
    rc = symode_tape_forward_seeded(tape, m, d, p, u, P, I, S_out);
    for (t = 0; t < tape->nt && rc == 0; t++) { /* row-major n x P -> column-major blocks (I as scratch) */
        double *blk = S_out + (size_t)t * n * P;
        for (i = 0; i < n; i++)
            for (c = 0; c < P; c++) I[i + (size_t)c * n] = blk[(size_t)i * P + c];
        memcpy(blk, I, (size_t)n * P * sizeof(double));
    }
    free(I);
    return rc;
}
