/*
 * symode_methods.h -- what symode_integrator.c and symode_tape.c must share exactly: the DOPRI5 and
 * RODAS4 coefficients (scalar names for the integrator's unrolled stages, arrays for the tape's
 * generic loops; both from the same literals), the stage times, RODAS4's df/dt increment and the
 * dense LU with partial pivoting (and the stats reset). The tape replays the integrator's steps bit
 * for bit, so there is one copy of each. Internal (everything is static); include it from .c files
 * only.
 */
#ifndef SYMODE_METHODS_H
#define SYMODE_METHODS_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "symode_integrator.h"

static inline double dmin(double a, double b) { return a < b ? a : b; }
static inline double dmax(double a, double b) { return a > b ? a : b; }

/* ------------------------------------------------------------------------------------------ */
/* Dormand-Prince 5(4) tableau [DP80], [HNW93 Table II.5.2]. c6 = c7 = 1, FSAL (row 7 = b).  */
/* ------------------------------------------------------------------------------------------ */
static const double DP_C2 = 1.0 / 5.0, DP_C3 = 3.0 / 10.0, DP_C4 = 4.0 / 5.0, DP_C5 = 8.0 / 9.0;
static const double DP_A21 = 1.0 / 5.0;
static const double DP_A31 = 3.0 / 40.0, DP_A32 = 9.0 / 40.0;
static const double DP_A41 = 44.0 / 45.0, DP_A42 = -56.0 / 15.0, DP_A43 = 32.0 / 9.0;
static const double DP_A51 = 19372.0 / 6561.0, DP_A52 = -25360.0 / 2187.0,
                    DP_A53 = 64448.0 / 6561.0, DP_A54 = -212.0 / 729.0;
static const double DP_A61 = 9017.0 / 3168.0, DP_A62 = -355.0 / 33.0, DP_A63 = 46732.0 / 5247.0,
                    DP_A64 = 49.0 / 176.0, DP_A65 = -5103.0 / 18656.0;
/* 5th order weights b = row 7 of A (a72 = 0) */
static const double DP_A71 = 35.0 / 384.0, DP_A73 = 500.0 / 1113.0, DP_A74 = 125.0 / 192.0,
                    DP_A75 = -2187.0 / 6784.0, DP_A76 = 11.0 / 84.0;
/* error weights e = b - bhat (bhat: 4th order embedded solution; e2 = 0) */
static const double DP_E1 = 71.0 / 57600.0, DP_E3 = -71.0 / 16695.0, DP_E4 = 71.0 / 1920.0,
                    DP_E5 = -17253.0 / 339200.0, DP_E6 = 22.0 / 525.0, DP_E7 = -1.0 / 40.0;

/* ------------------------------------------------------------------------------------------ */
/* RODAS4 [HW96 Sec. IV.7], rodas.f RO4COE (METH=1).  Formulation with u_i = sum_j gamma_ij k_j: */
/*   (1/(h*gamma) I - J) u_i = f(t + c_i h, y + sum_{j<i} a_ij u_j) + sum_{j<i} (c_ij/h) u_j     */
/*                             + h d_i f_t,                                                     */
/*   y_new = y + sum_j a6j u_j + u_6 with a6j = a5j for j<5, a65 = 1 (stiffly accurate):        */
/*   stage-6 argument is y + sum a5j u_j + u_5, y_new = that + u_6, error estimate = u_6.       */
/*   c5 = c6 = 1, d5 = d6 = 0.                                                                  */
/* ------------------------------------------------------------------------------------------ */
static const double RS_GAMMA = 0.25;
static const double RS_C2 = 0.386, RS_C3 = 0.21, RS_C4 = 0.63;
static const double RS_D1 = 0.25, RS_D2 = -0.1043, RS_D3 = 0.1035, RS_D4 = -0.3620000000000023e-01;
static const double RS_A21 = 0.1544000000000000e+01;
static const double RS_A31 = 0.9466785280815826e+00, RS_A32 = 0.2557011698983284e+00;
static const double RS_A41 = 0.3314825187068521e+01, RS_A42 = 0.2896124015972201e+01,
                    RS_A43 = 0.9986419139977817e+00;
static const double RS_A51 = 0.1221224509226641e+01, RS_A52 = 0.6019134481288629e+01,
                    RS_A53 = 0.1253708332932087e+02, RS_A54 = -0.6878860361058950e+00;
static const double RS_C21 = -0.5668800000000000e+01;
static const double RS_C31 = -0.2430093356833875e+01, RS_C32 = -0.2063599157091915e+00;
static const double RS_C41 = -0.1073529058151375e+00, RS_C42 = -0.9594562251023355e+01,
                    RS_C43 = -0.2047028614809616e+02;
static const double RS_C51 = 0.7496443313967647e+01, RS_C52 = -0.1024680431464352e+02,
                    RS_C53 = -0.3399990352819905e+02, RS_C54 = 0.1170890893206160e+02;
static const double RS_C61 = 0.8083246795921522e+01, RS_C62 = -0.7981132988064893e+01,
                    RS_C63 = -0.3152159432874371e+02, RS_C64 = 0.1631930543123136e+02,
                    RS_C65 = -0.6058818238834054e+01;

/* The same coefficients as arrays for generic stage loops (index 0..5 = stages 1..6). */
static inline const double *dp_a_row(int j)
{
    static const double A[6][6] = {
        {0, 0, 0, 0, 0, 0},
        {1.0 / 5.0, 0, 0, 0, 0, 0},
        {3.0 / 40.0, 9.0 / 40.0, 0, 0, 0, 0},
        {44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0, 0, 0},
        {19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0, 0},
        {9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0}};
    return A[j];
}
static const double DP_B[6] = {35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0,
                                -2187.0 / 6784.0, 11.0 / 84.0};

/* RODAS4 in the generic form Y_i = y + sum a_ij k_j (row 5 = stage 6: a_5j, a_65 = 1) */
static const double RS_A[6][5] = {
    {0, 0, 0, 0, 0},
    {0.1544000000000000e+01, 0, 0, 0, 0},
    {0.9466785280815826e+00, 0.2557011698983284e+00, 0, 0, 0},
    {0.3314825187068521e+01, 0.2896124015972201e+01, 0.9986419139977817e+00, 0, 0},
    {0.1221224509226641e+01, 0.6019134481288629e+01, 0.1253708332932087e+02,
     -0.6878860361058950e+00, 0},
    {0.1221224509226641e+01, 0.6019134481288629e+01, 0.1253708332932087e+02,
     -0.6878860361058950e+00, 1.0}};
static const double RS_CM[6][5] = {
    {0, 0, 0, 0, 0},
    {-0.5668800000000000e+01, 0, 0, 0, 0},
    {-0.2430093356833875e+01, -0.2063599157091915e+00, 0, 0, 0},
    {-0.1073529058151375e+00, -0.9594562251023355e+01, -0.2047028614809616e+02, 0, 0},
    {0.7496443313967647e+01, -0.1024680431464352e+02, -0.3399990352819905e+02,
     0.1170890893206160e+02, 0},
    {0.8083246795921522e+01, -0.7981132988064893e+01, -0.3152159432874371e+02,
     0.1631930543123136e+02, -0.6058818238834054e+01}};
static const double RS_DV[6] = {0.25, -0.1043, 0.1035, -0.3620000000000023e-01, 0.0, 0.0};

/* Stage times of a step from t with size h, clipped to the step's end tend (T[0] = t):
   DOPRI5 t + c_j h (c6 = 1: T[5] = tend), RODAS4 t + c_j h (stages 5 and 6 at tend). */
static inline void dp5_stage_times(double t, double h, double tend, double T[6])
{
    T[0] = t;
    T[1] = dmin(t + DP_C2 * h, tend);
    T[2] = dmin(t + DP_C3 * h, tend);
    T[3] = dmin(t + DP_C4 * h, tend);
    T[4] = dmin(t + DP_C5 * h, tend);
    T[5] = tend;
}

static inline void ros_stage_times(double t, double h, double tend, double T[6])
{
    T[0] = t;
    T[1] = dmin(t + RS_C2 * h, tend);
    T[2] = dmin(t + RS_C3 * h, tend);
    T[3] = dmin(t + RS_C4 * h, tend);
    T[4] = tend;
    T[5] = tend;
}

/* The increment of RODAS4's df/dt difference at t (rodas.f): sqrt(eps max(1e-5, |t|)), backward when a
   forward step would pass the interval end t1. */
static inline double ros_time_increment(double t, double t1)
{
    double delt = sqrt(DBL_EPSILON * dmax(1e-5, fabs(t)));
    return t + delt > t1 ? -delt : delt;
}

/* *stats before any work: nothing counted, no failed interval (fail_interval -1, fail_t NaN). */
static inline void stats_clear(symode_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    stats->fail_interval = -1;
    stats->fail_t = NAN;
}

/* E = fac I - J (n x n): the pairs of loads before the pairs of stores let the compiler use packed moves. */
static inline void iteration_matrix(int n, double fac, const double *J, double *E)
{
    size_t i, nn = (size_t)n * (size_t)n;
    for (i = 0; i + 1 < nn; i += 2) {
        double a = J[i], b = J[i + 1];
        E[i] = -a;
        E[i + 1] = -b;
    }
    if (i < nn) E[i] = -J[i];
    for (i = 0; i < (size_t)n; i++) E[i + i * (size_t)n] += fac;
}

/* RODAS4's step-size dependent coefficients of one step: c_ij / h (the stage combinations) and h d_i (the
   df/dt terms of non-autonomous problems), shared by the integrator and the tape's replay. */
typedef struct {
    double c21, c31, c32, c41, c42, c43, c51, c52, c53, c54, c61, c62, c63, c64, c65, d1, d2, d3, d4;
} ros_hcoef;

static inline void ros_step_coefficients(double h, ros_hcoef *c)
{
    c->c21 = RS_C21 / h;
    c->c31 = RS_C31 / h; c->c32 = RS_C32 / h;
    c->c41 = RS_C41 / h; c->c42 = RS_C42 / h; c->c43 = RS_C43 / h;
    c->c51 = RS_C51 / h; c->c52 = RS_C52 / h; c->c53 = RS_C53 / h; c->c54 = RS_C54 / h;
    c->c61 = RS_C61 / h; c->c62 = RS_C62 / h; c->c63 = RS_C63 / h; c->c64 = RS_C64 / h; c->c65 = RS_C65 / h;
    c->d1 = h * RS_D1; c->d2 = h * RS_D2; c->d3 = h * RS_D3; c->d4 = h * RS_D4;
}

/* The writable arrays of a symode_lu being built by lu_factor, and n ints of scratch (nz). li, lv, ui, uv
   hold up to n(n-1)/2 entries each, lp and up n + 1. */
typedef struct {
    int *piv, *lp, *li, *up, *ui, *nz;
    double *dinv, *lv, *uv;
} lu_store;

/* The nonzeros of the factors in A (as left by lu_factor) by columns into f: L's column k (rows below the
   diagonal) in li/lv[lp[k] .. lp[k+1]-1], U's column k (rows above the diagonal) in ui/uv[up[k] ..
   up[k+1]-1], rows ascending; dinv = the diagonal. */
static inline void lu_compress(int n, const double *A, const lu_store *f)
{
    int i, k, nl = 0, nu = 0;
    for (k = 0; k < n; k++) {
        const double *colk = A + (size_t)k * n;
        f->lp[k] = nl;
        f->up[k] = nu;
        for (i = 0; i < k; i++) {
            double v = colk[i];
            f->ui[nu] = i;
            f->uv[nu] = v;
            nu += v != 0.0;
        }
        f->dinv[k] = colk[k];
        for (i = k + 1; i < n; i++) {
            double v = colk[i];
            f->li[nl] = i;
            f->lv[nl] = v;
            nl += v != 0.0;
        }
    }
    f->lp[n] = nl;
    f->up[n] = nu;
}

/* LU decomposition with partial pivoting, column-major A (n*n), in place. Returns 0 or 1 (singular).
 * On exit the strict lower triangle of A holds L (unit diagonal implied), the strict upper triangle U and
 * the diagonal the RECIPROCAL pivots 1/U_kk (the solves multiply by them: a multiplication instead of a
 * division on the serial dependency chain of every substitution), and f the same factors compressed
 * (lu_compress's layout, piv included) for the solves.
 *
 * Sparsity: the update of column j by column k of L is skipped where the multiplier U_kj is 0 and runs
 * over the nonzero rows of L's column k only. The skipped operations are exact no-ops (x - 0 * y == x),
 * so the factors are those of the dense elimination; the Jacobians of reaction networks have a few
 * nonzeros per row, and so do these factors. The compressed columns are collected during the
 * elimination (L's column k and U's row k are final at step k; a row interchange at a later step
 * renames the rows of earlier L entries, whose columns then need not be in ascending row order).
 *
 * One exception to partial pivoting: a row k whose entries right of the diagonal are exact zeros (and
 * whose diagonal is not) is its own pivot. For an organism at density 0, d(dY/dt)/dx = 0 except on the
 * diagonal, and the Rosenbrock right-hand side of its row is exactly 0; keeping that row in place gives
 * an exact 0 stage increment, where swapping it with a metabolite row that depends on Y would fill it
 * in and leave a roundoff-size Y that later grows into an invasion the model does not contain. Taking a
 * smaller pivot here is stable: the row has nothing to the right to amplify. */
static inline int lu_factor(int n, double *A, const lu_store *f)
{
    int i, j, k, pk, q, nnz, nl = 0, nu = 0;
    int *piv = f->piv, *nz = f->nz, *ucnt = f->up;
    for (k = 0; k < n; k++) ucnt[k] = 0;
    for (k = 0; k < n; k++) {
        double amax = fabs(A[k + (size_t)k * n]), inv;
        double *colk = A + (size_t)k * n;
        int singleton = amax > 0.0;
        for (j = k + 1; singleton && j < n; j++) singleton = A[k + (size_t)j * n] == 0.0;
        pk = k;
        if (!singleton)
            for (i = k + 1; i < n; i++) {
                double a = fabs(colk[i]);
                if (a > amax) { amax = a; pk = i; }
            }
        piv[k] = pk;
        if (!(amax > 0.0) || !isfinite(amax)) return 1;
        if (pk != k) {
            for (q = 0; q < nl; q++) /* earlier L entries in the two rows */
                f->li[q] = f->li[q] == k ? pk : f->li[q] == pk ? k : f->li[q];
            for (j = 0; j < n; j++) {
                double tmp = A[k + (size_t)j * n];
                A[k + (size_t)j * n] = A[pk + (size_t)j * n];
                A[pk + (size_t)j * n] = tmp;
            }
        }
        inv = 1.0 / colk[k];
        colk[k] = inv;
        f->dinv[k] = inv;
        nnz = 0;
        for (i = k + 1; i < n; i++) {
            colk[i] *= inv;
            nz[nnz] = i;
            nnz += colk[i] != 0.0;
        }
        f->lp[k] = nl;
        for (q = 0; q < nnz; q++) {
            f->li[nl + q] = nz[q];
            f->lv[nl + q] = colk[nz[q]];
        }
        nl += nnz;
        for (j = k + 1; j < n; j++) {
            double *colj = A + (size_t)j * n;
            double a = colj[k];
            if (a != 0.0) {
                /* U_kj: entry ucnt[j] of U's column j, stored at j(j-1)/2 until compacted below */
                size_t at = (size_t)j * (size_t)(j - 1) / 2 + (size_t)ucnt[j]++;
                f->ui[at] = k;
                f->uv[at] = a;
                for (q = 0; q < nnz; q++) colj[nz[q]] -= colk[nz[q]] * a;
            }
        }
    }
    f->lp[n] = nl;
    for (j = 0; j < n; j++) { /* compact U's columns (moving entries left: in place) */
        size_t from = (size_t)j * (size_t)(j > 0 ? j - 1 : 0) / 2;
        int c = ucnt[j];
        for (q = 0; q < c; q++) {
            f->ui[nu + q] = f->ui[from + (size_t)q];
            f->uv[nu + q] = f->uv[from + (size_t)q];
        }
        f->up[j] = nu; /* ucnt aliases up: c was read first */
        nu += c;
    }
    f->up[n] = nu;
    return 0;
}

/* Solve E x = b with compressed factors; b is overwritten by x. The operations of the dense substitutions
   minus exact no-ops: the same numbers. */
static inline void lu_solve(const symode_lu *f, double *b)
{
    const int n = f->n;
    const int *piv = f->piv, *lp = f->lp, *li = f->li, *up = f->up, *ui = f->ui;
    const double *lv = f->lv, *uv = f->uv, *dinv = f->dinv;
    int k, q;
    /* lu_factor swaps whole rows (its L columns too, as LAPACK's getrf): apply every interchange to b
       first, then L y = P b. (Interleaving the swaps with the elimination, as LINPACK's gesl does for
       factors that swap only the trailing columns, solves a wrong system once a row with multipliers
       is swapped.) */
    for (k = 0; k < n; k++)
        if (piv[k] != k) { double tmp = b[k]; b[k] = b[piv[k]]; b[piv[k]] = tmp; }
    /* no test for b_k == 0: the skipped updates would be exact no-ops, and the data-dependent branch
       mispredicts (a third of a small model's solve) */
    for (k = 0; k < n; k++) { /* forward: L y = P b */
        double bk = b[k];
        for (q = lp[k]; q < lp[k + 1]; q++) b[li[q]] -= lv[q] * bk;
    }
    for (k = n - 1; k >= 0; k--) { /* backward: U x = y */
        double bk = (b[k] *= dinv[k]);
        for (q = up[k]; q < up[k + 1]; q++) b[ui[q]] -= uv[q] * bk;
    }
}

/* Solve E^T x = b with compressed factors (P E = L U  ->  E^T = U^T L^T P); b is overwritten by x.
   Row k of U^T is column k of U (and of L^T column k of L): one short dot product per row. */
static inline void lu_solve_t(const symode_lu *f, double *b)
{
    const int n = f->n;
    const int *piv = f->piv, *lp = f->lp, *li = f->li, *up = f->up, *ui = f->ui;
    const double *lv = f->lv, *uv = f->uv, *dinv = f->dinv;
    int k, q;
    for (k = 0; k < n; k++) { /* U^T z = b */
        double s = b[k];
        for (q = up[k]; q < up[k + 1]; q++) s -= uv[q] * b[ui[q]];
        b[k] = s * dinv[k];
    }
    for (k = n - 1; k >= 0; k--) { /* L^T w = z */
        double s = b[k];
        for (q = lp[k]; q < lp[k + 1]; q++) s -= lv[q] * b[li[q]];
        b[k] = s;
    }
    for (k = n - 1; k >= 0; k--) /* x = P^T w */
        if (piv[k] != k) { double tmp = b[k]; b[k] = b[piv[k]]; b[piv[k]] = tmp; }
}

/* Solve E X = B for the ncol columns of B (column-major, n x ncol) with compressed factors: the forward
   sensitivities' solves, row by row over all columns at once. The same numbers as lu_solve per column. */
static inline void lu_solve_cols(const symode_lu *f, double *B, int ncol)
{
    const int n = f->n;
    const int *piv = f->piv, *lp = f->lp, *li = f->li, *up = f->up, *ui = f->ui;
    const double *lv = f->lv, *uv = f->uv, *dinv = f->dinv;
    int k, q, c;
    for (k = 0; k < n; k++)
        if (piv[k] != k)
            for (c = 0; c < ncol; c++) {
                double *b = B + (size_t)c * n, tmp = b[k];
                b[k] = b[piv[k]];
                b[piv[k]] = tmp;
            }
    for (k = 0; k < n; k++) /* forward: L Y = P B */
        for (q = lp[k]; q < lp[k + 1]; q++) {
            int i = li[q];
            double l = lv[q];
            for (c = 0; c < ncol; c++) B[i + (size_t)c * n] -= l * B[k + (size_t)c * n];
        }
    for (k = n - 1; k >= 0; k--) { /* backward: U X = Y */
        double d = dinv[k];
        for (c = 0; c < ncol; c++) B[k + (size_t)c * n] *= d;
        for (q = up[k]; q < up[k + 1]; q++) {
            int i = ui[q];
            double u = uv[q];
            for (c = 0; c < ncol; c++) B[i + (size_t)c * n] -= u * B[k + (size_t)c * n];
        }
    }
}

#endif /* SYMODE_METHODS_H */
