/*
 * Test driver for symode_tape.c (discrete adjoint / forward sensitivities of symode_integrator.c).
 * Prints one line per check:  "OK <name> | <info>"  or  "FAIL <name> | <info>",
 * "INFO <name> | <info>" lines (not checks) and a final "SUMMARY <n_ok> <n_fail>" line.
 * Exit code 0 iff no FAIL.  Usage: test_tape_main [--quick]
 * (--quick, for valgrind / sanitizers: shorter chemostat runs, finite-difference checks only for nl3)
 */
#include "symode_tape.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_check.h"

static int g_quick = 0;

static const char *mname(int method)
{
    return method == SYMODE_AUTO ? "auto" : method == SYMODE_EXPLICIT ? "explicit" : "stiff";
}

/* ================================================================================== */
/* generic test model: f, Jx, Jp, Hxx, Hxp hand-written; the symode callbacks below    */
/* (rhs, jac, jac_p, vjp, vjp2, jvp2) are generic contractions of these.                */
/*   Hxx[i + n*(j + n*l)] = d2 f_i / dx_j dx_l,  Hxp[i + n*(j + n*q)] = d2 f_i / dx_j dp_q */
/* ================================================================================== */
typedef struct tmodel tmodel;
typedef void (*tm_fn)(const tmodel *tm, double t, const double *x, const double *p,
                      const double *u, double *out);
struct tmodel {
    int n, np, nu;
    tm_fn f, jx, jp, hxx, hxp; /* outputs are zeroed by the caller */
    double ct;                 /* nl3: strength of the explicit time dependence */
    long ncalls;               /* not thread safe, only used single threaded here */
};

static int g_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                 double *out)
{
    const tmodel *tm = (const tmodel *)ctx;
    memset(out, 0, (size_t)tm->n * sizeof(double));
    tm->f(tm, t, x, p, u, out);
    return 0;
}
static int g_jac(void *ctx, double t, const double *x, const double *p, const double *u, double *J)
{
    const tmodel *tm = (const tmodel *)ctx;
    memset(J, 0, (size_t)tm->n * tm->n * sizeof(double));
    tm->jx(tm, t, x, p, u, J);
    return 0;
}
static int g_jacp(void *ctx, double t, const double *x, const double *p, const double *u,
                  double *Jp)
{
    const tmodel *tm = (const tmodel *)ctx;
    memset(Jp, 0, (size_t)tm->n * tm->np * sizeof(double));
    tm->jp(tm, t, x, p, u, Jp);
    return 0;
}
static int g_vjp(void *ctx, double t, const double *x, const double *p, const double *u,
                 const double *w, double *ox, double *op)
{
    const tmodel *tm = (const tmodel *)ctx;
    double J[64], Jp[64];
    int n = tm->n, np = tm->np, i, j;
    g_jac(ctx, t, x, p, u, J);
    g_jacp(ctx, t, x, p, u, Jp);
    for (j = 0; j < n; j++) {
        double s = 0.0;
        for (i = 0; i < n; i++) s += J[i + j * n] * w[i];
        ox[j] = s;
    }
    for (j = 0; j < np; j++) {
        double s = 0.0;
        for (i = 0; i < n; i++) s += Jp[i + j * n] * w[i];
        op[j] = s;
    }
    return 0;
}
static void hess(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                 double *Hxx, double *Hxp)
{
    int n = tm->n, np = tm->np;
    memset(Hxx, 0, (size_t)n * n * n * sizeof(double));
    memset(Hxp, 0, (size_t)n * n * np * sizeof(double));
    if (tm->hxx) tm->hxx(tm, t, x, p, u, Hxx);
    if (tm->hxp) tm->hxp(tm, t, x, p, u, Hxp);
}
static int g_vjp2(void *ctx, double t, const double *x, const double *p, const double *u,
                  const double *v, const double *w, double *ox, double *op)
{
    const tmodel *tm = (const tmodel *)ctx;
    double Hxx[512], Hxp[512];
    int n = tm->n, np = tm->np, i, j, l;
    hess(tm, t, x, p, u, Hxx, Hxp);
    for (l = 0; l < n; l++) {
        double s = 0.0;
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) s += w[i] * Hxx[i + n * (j + n * l)] * v[j];
        ox[l] = s;
    }
    for (l = 0; l < np; l++) {
        double s = 0.0;
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) s += w[i] * Hxp[i + n * (j + n * l)] * v[j];
        op[l] = s;
    }
    return 0;
}
static int g_jvp2(void *ctx, double t, const double *x, const double *p, const double *u,
                  const double *v, const double *dx, const double *dp, double *out)
{
    const tmodel *tm = (const tmodel *)ctx;
    double Hxx[512], Hxp[512];
    int n = tm->n, np = tm->np, i, j, l;
    hess(tm, t, x, p, u, Hxx, Hxp);
    for (i = 0; i < n; i++) {
        double s = 0.0;
        for (j = 0; j < n; j++) {
            for (l = 0; l < n; l++) s += Hxx[i + n * (j + n * l)] * v[j] * dx[l];
            if (dp)
                for (l = 0; l < np; l++) s += Hxp[i + n * (j + n * l)] * v[j] * dp[l];
        }
        out[i] = s;
    }
    return 0;
}

/* vjp2 summed over the six columns of V, W (what a model library's sym_vjp2s computes in one call) */
static int g_vjp2s(void *ctx, double t, const double *x, const double *p, const double *u,
                   const double *V, const double *W, double *ox, double *op)
{
    const tmodel *tm = (const tmodel *)ctx;
    double ox1[8], op1[8];
    int n = tm->n, np = tm->np, j, l;
    for (l = 0; l < n; l++) ox[l] = 0.0;
    for (l = 0; l < np; l++) op[l] = 0.0;
    for (j = 0; j < 6; j++) {
        if (g_vjp2(ctx, t, x, p, u, V + j * n, W + j * n, ox1, op1)) return 1;
        for (l = 0; l < n; l++) ox[l] += ox1[l];
        for (l = 0; l < np; l++) op[l] += op1[l];
    }
    return 0;
}
static const symode_derivs DERIVS = {g_jacp, g_vjp, g_vjp2, g_jvp2, g_vjp2s, NULL};
/* without the summed product: six vjp2 calls per RODAS4 step */
static const symode_derivs DERIVS6 = {g_jacp, g_vjp, g_vjp2, g_jvp2, NULL, NULL};

/* ---------------- nl3: 3-state nonlinear, 4 parameters, 1 input ----------------
   f0 = p0 a (1 - a/2) - p1 a b + u0 + ct sin(2t) b
   f1 = p1 a b - p2 b - 0.3 b c
   f2 = p3 b c/(1+c) - 0.4 c                                                         */
#define J3(i, j) J[(i) + 3 * (j)]
#define H3(i, j, l) H[(i) + 3 * ((j) + 3 * (l))]
static void nl3_f(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                  double *f)
{
    double a = x[0], b = x[1], c = x[2];
    f[0] = p[0] * a * (1.0 - 0.5 * a) - p[1] * a * b + u[0] + tm->ct * sin(2.0 * t) * b;
    f[1] = p[1] * a * b - p[2] * b - 0.3 * b * c;
    f[2] = p[3] * b * c / (1.0 + c) - 0.4 * c;
}
static void nl3_jx(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                   double *J)
{
    double a = x[0], b = x[1], c = x[2], g = c / (1.0 + c), g1 = 1.0 / ((1.0 + c) * (1.0 + c));
    (void)u;
    J3(0, 0) = p[0] * (1.0 - a) - p[1] * b;  J3(0, 1) = -p[1] * a + tm->ct * sin(2.0 * t);
    J3(1, 0) = p[1] * b;  J3(1, 1) = p[1] * a - p[2] - 0.3 * c;  J3(1, 2) = -0.3 * b;
    J3(2, 1) = p[3] * g;  J3(2, 2) = p[3] * b * g1 - 0.4;
}
static void nl3_jp(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                   double *J)
{
    double a = x[0], b = x[1], c = x[2];
    (void)tm; (void)t; (void)p; (void)u;
    J3(0, 0) = a * (1.0 - 0.5 * a);  J3(0, 1) = -a * b;
    J3(1, 1) = a * b;  J3(1, 2) = -b;
    J3(2, 3) = b * c / (1.0 + c);
}
static void nl3_hxx(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                    double *H)
{
    double b = x[1], c = x[2], g1 = 1.0 / ((1.0 + c) * (1.0 + c)), g2 = -2.0 * g1 / (1.0 + c);
    (void)tm; (void)t; (void)u;
    H3(0, 0, 0) = -p[0];
    H3(0, 0, 1) = H3(0, 1, 0) = -p[1];
    H3(1, 0, 1) = H3(1, 1, 0) = p[1];
    H3(1, 1, 2) = H3(1, 2, 1) = -0.3;
    H3(2, 1, 2) = H3(2, 2, 1) = p[3] * g1;
    H3(2, 2, 2) = p[3] * b * g2;
}
static void nl3_hxp(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                    double *H)
{
    double a = x[0], b = x[1], c = x[2], g = c / (1.0 + c), g1 = 1.0 / ((1.0 + c) * (1.0 + c));
    (void)tm; (void)t; (void)p; (void)u;
    H3(0, 0, 0) = 1.0 - a;
    H3(0, 0, 1) = -b;  H3(0, 1, 1) = -a;
    H3(1, 0, 1) = b;  H3(1, 1, 1) = a;  H3(1, 1, 2) = -1.0;
    H3(2, 1, 3) = g;  H3(2, 2, 3) = b * g1;
}

/* ---------------- chem: stiff Monod chemostat (as in test_integrator_main.c) ----------------
   states S, X, P, Q, R;  u0 = D;  p = S0, g, mumax, K, kup, krel, kconv;  mu = mumax S/(K+S)
   S' = (S0-S) D - g mu X,   X' = (mu - D) X
   P' = 0.5 mu X - kup P X + krel Q - D P
   Q' = kup P X - krel Q - kconv Q - D Q
   R' = kconv Q - D R                                                                     */
#define J5(i, j) J[(i) + 5 * (j)]
#define H5(i, j, l) H[(i) + 5 * ((j) + 5 * (l))]
typedef struct { double mu, mup, mupp, mu2, mu3, mup2, mup3; } monod;
static monod monod_eval(double S, const double *p)
{
    monod r;
    double K = p[3], vm = p[2], d = K + S;
    r.mu = vm * S / d;
    r.mup = vm * K / (d * d);
    r.mupp = -2.0 * vm * K / (d * d * d);
    r.mu2 = S / d;                     /* d mu / d mumax */
    r.mu3 = -vm * S / (d * d);         /* d mu / d K */
    r.mup2 = K / (d * d);              /* d mup / d mumax */
    r.mup3 = vm * (S - K) / (d * d * d); /* d mup / d K */
    return r;
}
static void chem_f(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                   double *f)
{
    double S = x[0], X = x[1], P = x[2], Q = x[3], R = x[4], D = u[0];
    monod m = monod_eval(S, p);
    (void)tm; (void)t;
    f[0] = (p[0] - S) * D - p[1] * m.mu * X;
    f[1] = (m.mu - D) * X;
    f[2] = 0.5 * m.mu * X - p[4] * P * X + p[5] * Q - D * P;
    f[3] = p[4] * P * X - p[5] * Q - p[6] * Q - D * Q;
    f[4] = p[6] * Q - D * R;
}
static void chem_jx(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                    double *J)
{
    double X = x[1], P = x[2], D = u[0];
    monod m = monod_eval(x[0], p);
    (void)tm; (void)t;
    J5(0, 0) = -D - p[1] * m.mup * X;  J5(0, 1) = -p[1] * m.mu;
    J5(1, 0) = m.mup * X;              J5(1, 1) = m.mu - D;
    J5(2, 0) = 0.5 * m.mup * X;        J5(2, 1) = 0.5 * m.mu - p[4] * P;
    J5(2, 2) = -p[4] * X - D;          J5(2, 3) = p[5];
    J5(3, 1) = p[4] * P;  J5(3, 2) = p[4] * X;  J5(3, 3) = -p[5] - p[6] - D;
    J5(4, 3) = p[6];      J5(4, 4) = -D;
}
static void chem_jp(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                    double *J)
{
    double X = x[1], P = x[2], Q = x[3], D = u[0];
    monod m = monod_eval(x[0], p);
    (void)tm; (void)t;
    J5(0, 0) = D;  J5(0, 1) = -m.mu * X;  J5(0, 2) = -p[1] * m.mu2 * X;  J5(0, 3) = -p[1] * m.mu3 * X;
    J5(1, 2) = m.mu2 * X;  J5(1, 3) = m.mu3 * X;
    J5(2, 2) = 0.5 * m.mu2 * X;  J5(2, 3) = 0.5 * m.mu3 * X;  J5(2, 4) = -P * X;  J5(2, 5) = Q;
    J5(3, 4) = P * X;  J5(3, 5) = -Q;  J5(3, 6) = -Q;
    J5(4, 6) = Q;
}
static void chem_hxx(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                     double *H)
{
    double X = x[1];
    monod m = monod_eval(x[0], p);
    (void)tm; (void)t; (void)u;
    H5(0, 0, 0) = -p[1] * m.mupp * X;  H5(0, 0, 1) = H5(0, 1, 0) = -p[1] * m.mup;
    H5(1, 0, 0) = m.mupp * X;          H5(1, 0, 1) = H5(1, 1, 0) = m.mup;
    H5(2, 0, 0) = 0.5 * m.mupp * X;    H5(2, 0, 1) = H5(2, 1, 0) = 0.5 * m.mup;
    H5(2, 1, 2) = H5(2, 2, 1) = -p[4];
    H5(3, 1, 2) = H5(3, 2, 1) = p[4];
}
static void chem_hxp(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                     double *H)
{
    double X = x[1], P = x[2];
    monod m = monod_eval(x[0], p);
    (void)tm; (void)t; (void)u;
    /* d/dp (J row 0) */
    H5(0, 0, 1) = -m.mup * X;  H5(0, 0, 2) = -p[1] * m.mup2 * X;  H5(0, 0, 3) = -p[1] * m.mup3 * X;
    H5(0, 1, 1) = -m.mu;       H5(0, 1, 2) = -p[1] * m.mu2;       H5(0, 1, 3) = -p[1] * m.mu3;
    H5(1, 0, 2) = m.mup2 * X;  H5(1, 0, 3) = m.mup3 * X;
    H5(1, 1, 2) = m.mu2;       H5(1, 1, 3) = m.mu3;
    H5(2, 0, 2) = 0.5 * m.mup2 * X;  H5(2, 0, 3) = 0.5 * m.mup3 * X;
    H5(2, 1, 2) = 0.5 * m.mu2;  H5(2, 1, 3) = 0.5 * m.mu3;  H5(2, 1, 4) = -P;
    H5(2, 2, 4) = -X;  H5(2, 3, 5) = 1.0;
    H5(3, 1, 4) = P;  H5(3, 2, 4) = X;  H5(3, 3, 5) = -1.0;  H5(3, 3, 6) = -1.0;
    H5(4, 3, 6) = 1.0;
}

/* ---------------- lin2: x0' = -a x0, x1' = a x0 - b x1 (linear in x; analytic sensitivities) */
#define J2(i, j) J[(i) + 2 * (j)]
#define H2(i, j, l) H[(i) + 2 * ((j) + 2 * (l))]
static void lin2_f(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                   double *f)
{
    (void)tm; (void)t; (void)u;
    f[0] = -p[0] * x[0];
    f[1] = p[0] * x[0] - p[1] * x[1];
}
static void lin2_jx(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                    double *J)
{
    (void)tm; (void)t; (void)x; (void)u;
    J2(0, 0) = -p[0];  J2(1, 0) = p[0];  J2(1, 1) = -p[1];
}
static void lin2_jp(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                    double *J)
{
    (void)tm; (void)t; (void)p; (void)u;
    J2(0, 0) = -x[0];  J2(1, 0) = x[0];  J2(1, 1) = -x[1];
}
static void lin2_hxp(const tmodel *tm, double t, const double *x, const double *p, const double *u,
                     double *H)
{
    (void)tm; (void)t; (void)x; (void)p; (void)u;
    H2(0, 0, 0) = -1.0;  H2(1, 0, 0) = 1.0;  H2(1, 1, 1) = -1.0;
}
/* exact x(t) and d x / d[x0_0, x0_1, a, b] (column-major 2x4) */
static void lin2_exact(double t, const double *x0, const double *p, double *x, double *S)
{
    double a = p[0], b = p[1], Ea = exp(-a * t), Eb = exp(-b * t), dd = b - a;
    double g = (Ea - Eb) / dd;
    x[0] = x0[0] * Ea;
    x[1] = x0[1] * Eb + a * x0[0] * g;
    S[0] = Ea;  S[1] = a * g;
    S[2] = 0.0; S[3] = Eb;
    S[4] = -t * x0[0] * Ea;
    S[5] = x0[0] * (b / (dd * dd) * (Ea - Eb) - a * t * Ea / dd);
    S[6] = 0.0;
    S[7] = -t * x0[1] * Eb + x0[0] * (-a / (dd * dd) * (Ea - Eb) + a * t * Eb / dd);
}

/* ================================================================================== */
/* checks of the hand-written model derivatives against central differences           */
/* ================================================================================== */
static void deriv_check(const char *name, tmodel *tm, double t, const double *x, const double *p,
                        const double *u)
{
    int n = tm->n, np = tm->np, i, j, l;
    double J[64], Jp[64], Hxx[512], Hxp[512], fa[8], fb[8], Ja[64], Jb[64], xx[8], pp[8];
    double e = 0.0;
    g_jac(tm, t, x, p, u, J);
    g_jacp(tm, t, x, p, u, Jp);
    hess(tm, t, x, p, u, Hxx, Hxp);
    for (j = 0; j < n + np; j++) {
        double h;
        memcpy(xx, x, (size_t)n * sizeof(double));
        memcpy(pp, p, (size_t)np * sizeof(double));
        if (j < n) { h = 1e-6 * fmax(1.0, fabs(x[j])); xx[j] += h; }
        else { h = 1e-6 * fmax(1.0, fabs(p[j - n])); pp[j - n] += h; }
        g_rhs(tm, t, xx, pp, u, fa);
        g_jac(tm, t, xx, pp, u, Ja);
        if (j < n) xx[j] -= 2 * h; else pp[j - n] -= 2 * h;
        g_rhs(tm, t, xx, pp, u, fb);
        g_jac(tm, t, xx, pp, u, Jb);
        for (i = 0; i < n; i++) {
            double fd = (fa[i] - fb[i]) / (2 * h);
            double an = j < n ? J[i + j * n] : Jp[i + (j - n) * n];
            e = fmax(e, fabs(fd - an) / (1.0 + fabs(an)));
            for (l = 0; l < n; l++) { /* d/dtheta_j of J[i, l] */
                double fd2 = (Ja[i + l * n] - Jb[i + l * n]) / (2 * h);
                double an2 = j < n ? Hxx[i + n * (l + n * j)] : Hxp[i + n * (l + n * (j - n))];
                e = fmax(e, fabs(fd2 - an2) / (1.0 + fabs(an2)));
            }
        }
    }
    check(e < 1e-6, name, "max rel err of Jx, Jp, Hxx, Hxp vs central differences %.2e", e);
}

/* ================================================================================== */
/* discrete-derivative checks                                                          */
/* ================================================================================== */
static double wcoef(int i, int k) { return sin(1.3 * i + 0.7 * k + 0.4) + 0.2; }

typedef struct {
    long nsteps, nstiff, rejected;
    int switches;
    double grad[16];      /* adjoint gradient [grad_x0, grad_p] */
    double replay_diff;   /* max |replay - xout| (relative) */
    double fd_fwd;        /* max over columns of |S - FD| / max|S column| */
    double fd_adj;        /* |grad_adj_j - FD(L)_j| / sum_i,k |c_ik S_ik,j| */
    double adj_vs_fwd;    /* max |grad_adj - S^T c| / max|grad| */
    double *S;            /* forward sensitivities (caller frees) */
    double stored_diff;   /* max |difference| of adjoint / forward between stored and replayed steps */
    double vjp2s_diff;    /* max |grad(vjp2s) - grad(six vjp2)| / max |grad| */
    long nstored;         /* steps with stored stage values (default limit) */
    int ok_rc;
} dres;

/* record, replay, forward, adjoint, FD of the replayed discrete map */
static dres run_checks(tmodel *tm, int nonaut, int method, double rtol, double atol, int nt,
                       const double *times, const double *x0, const double *p, const double *u,
                       int do_fd)
{
    symode_model m;
    symode_options o;
    symode_stats st;
    symode_tape *tape = symode_tape_new();
    int n = tm->n, np = tm->np, P = n + np, rc, i, k, j;
    size_t NP = (size_t)n * P;
    double *xout = malloc((size_t)nt * n * sizeof(double));
    double *xr = malloc((size_t)nt * n * sizeof(double));
    double *xa = malloc((size_t)nt * n * sizeof(double));
    double *xb = malloc((size_t)nt * n * sizeof(double));
    double *S = malloc((size_t)nt * NP * sizeof(double));
    double *lam = malloc((size_t)nt * n * sizeof(double));
    double gx[8], gp[8], gf[16], th[16], scale = 0.0;
    dres r;
    memset(&r, 0, sizeof(r));
    r.ok_rc = 1;

    m.nx = n; m.np = np; m.nu = tm->nu; m.rhs = g_rhs; m.jac = g_jac; m.ctx = tm;
    m.nonautonomous = nonaut;
    symode_default_options(&o);
    o.method = method; o.rtol = rtol; o.atol = atol;
    rc = symode_integrate_record(&m, &o, nt, times, x0, p, u, xout, &st, tape);
    if (rc) { r.ok_rc = 0; printf("  record rc=%d\n", rc); }
    r.nsteps = symode_tape_nsteps(tape);
    r.nstiff = symode_tape_nstiff(tape);
    r.switches = st.n_switches;
    r.rejected = st.n_rejected;
    if (r.nsteps != st.n_accepted) r.ok_rc = 0;

    /* replay with the recorded inputs reproduces the integrator's output */
    rc = symode_tape_replay(tape, &m, x0, p, u, xr);
    if (rc) { r.ok_rc = 0; printf("  replay rc=%d\n", rc); }
    for (i = 0; i < nt * n; i++)
        r.replay_diff = fmax(r.replay_diff, fabs(xr[i] - xout[i]) / (fabs(xout[i]) + 1e-300));

    /* forward sensitivities */
    rc = symode_tape_forward(tape, &m, &DERIVS, p, u, S);
    if (rc) { r.ok_rc = 0; printf("  forward rc=%d\n", rc); }

    /* adjoint of L = sum_i c_i . x(t_i), compared with S^T c */
    for (i = 0; i < nt; i++)
        for (k = 0; k < n; k++) lam[i * n + k] = wcoef(i, k);
    rc = symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx, gp);
    if (rc) { r.ok_rc = 0; printf("  adjoint rc=%d\n", rc); }
    for (j = 0; j < P; j++) {
        double s = 0.0;
        for (i = 0; i < nt; i++)
            for (k = 0; k < n; k++) s += S[(size_t)i * NP + k + (size_t)j * n] * lam[i * n + k];
        gf[j] = s;
        scale = fmax(scale, fabs(s));
    }
    for (j = 0; j < P; j++) {
        double ga = j < n ? gx[j] : gp[j - n];
        r.grad[j] = ga;
        r.adj_vs_fwd = fmax(r.adj_vs_fwd, fabs(ga - gf[j]) / scale);
    }

    /* the summed second-order product (vjp2s) against six vjp2 calls per step: the same to rounding */
    {
        double gx6[8], gp6[8], gmax = 0.0;
        rc = symode_tape_adjoint(tape, &m, &DERIVS6, p, u, lam, gx6, gp6);
        if (rc) { r.ok_rc = 0; printf("  adjoint (vjp2) rc=%d\n", rc); }
        for (j = 0; j < n; j++) gmax = fmax(gmax, fabs(gx[j]));
        for (j = 0; j < np; j++) gmax = fmax(gmax, fabs(gp[j]));
        for (j = 0; j < n; j++) r.vjp2s_diff = fmax(r.vjp2s_diff, fabs(gx6[j] - gx[j]) / gmax);
        for (j = 0; j < np; j++) r.vjp2s_diff = fmax(r.vjp2s_diff, fabs(gp6[j] - gp[j]) / gmax);
    }

    /* the same derivatives, bit for bit, with every step replayed (stage limit 0) and with only the
       first steps stored (a limit of 4 KiB) */
    r.nstored = symode_tape_nstored(tape);
    {
        static const size_t limits[2] = {0, 4096};
        int il;
        double *S2 = malloc((size_t)nt * NP * sizeof(double));
        for (il = 0; il < 2; il++) {
            symode_tape *t2 = symode_tape_new();
            double gx2[8], gp2[8];
            symode_tape_set_stage_limit(t2, limits[il]);
            rc = symode_integrate_record(&m, &o, nt, times, x0, p, u, xr, NULL, t2);
            if (!rc) rc = symode_tape_adjoint(t2, &m, &DERIVS, p, u, lam, gx2, gp2);
            if (!rc) rc = symode_tape_forward(t2, &m, &DERIVS, p, u, S2);
            if (rc || (il == 0 && symode_tape_nstored(t2) != 0) ||
                (il == 1 && symode_tape_nstored(t2) >= r.nsteps)) {
                r.ok_rc = 0;
                printf("  stage limit %zu: rc=%d stored %ld\n", limits[il], rc, symode_tape_nstored(t2));
            }
            for (j = 0; j < n; j++) r.stored_diff = fmax(r.stored_diff, fabs(gx2[j] - gx[j]));
            for (j = 0; j < np; j++) r.stored_diff = fmax(r.stored_diff, fabs(gp2[j] - gp[j]));
            for (i = 0; i < nt * (int)NP; i++) r.stored_diff = fmax(r.stored_diff, fabs(S2[i] - S[i]));
            symode_tape_free(t2);
        }
        free(S2);
    }

    if (do_fd) {
        /* 4th-order central differences of the replayed discrete map,
           (8 (x(+h) - x(-h)) - (x(+2h) - x(-2h))) / (12 h), relative steps 1e-2, 1e-3, 1e-4
           (the best of the three per column: truncation vs round-off of the reference; with
           explicit steps at the stability boundary, large perturbations of the stiff rate
           constants make the replayed map blow up, so the smaller steps are needed there) */
        double *xc = malloc((size_t)nt * n * sizeof(double));
        double *xd = malloc((size_t)nt * n * sizeof(double));
        for (j = 0; j < P; j++) {
            double best_col = HUGE_VAL, best_adj = HUGE_VAL, ga = j < n ? gx[j] : gp[j - n];
            int ih;
            th[j] = j < n ? x0[j] : p[j - n];
            for (ih = 0; ih < 3; ih++) {
                double h = pow(10.0, -2 - ih) * fmax(fabs(th[j]), 1e-2);
                double colmax = 0.0, colerr = 0.0, dL = 0.0, absL = 0.0, fdL;
                double xp[8], pp[8], *outs[4];
                const double offs[4] = {1.0, -1.0, 2.0, -2.0};
                int c;
                outs[0] = xa; outs[1] = xb; outs[2] = xc; outs[3] = xd;
                for (c = 0; c < 4; c++) {
                    memcpy(xp, x0, (size_t)n * sizeof(double));
                    memcpy(pp, p, (size_t)np * sizeof(double));
                    if (j < n) xp[j] = th[j] + offs[c] * h; else pp[j - n] = th[j] + offs[c] * h;
                    if (symode_tape_replay(tape, &m, xp, pp, u, outs[c])) r.ok_rc = 0;
                }
                for (i = 0; i < nt; i++)
                    for (k = 0; k < n; k++) {
                        size_t q = (size_t)i * n + k;
                        double fd = (8.0 * (xa[q] - xb[q]) - (xc[q] - xd[q])) / (12.0 * h);
                        double an = S[(size_t)i * NP + k + (size_t)j * n];
                        colmax = fmax(colmax, fabs(an));
                        colerr = fmax(colerr, fabs(fd - an));
                        dL += lam[q] * fd;
                        absL += fabs(lam[q] * an);
                    }
                fdL = dL;
                best_col = fmin(best_col, colmax > 0.0 ? colerr / colmax : colerr);
                /* relative to sum |c_i,k dx_k(t_i)/dtheta_j| (the size of the summed terms) */
                best_adj = fmin(best_adj, fabs(fdL - ga) / (absL > 0.0 ? absL : 1.0));
            }
            r.fd_fwd = fmax(r.fd_fwd, best_col);
            r.fd_adj = fmax(r.fd_adj, best_adj);
        }
        free(xc);
        free(xd);
    }
    symode_tape_free(tape);
    free(xout); free(xr); free(xa); free(xb); free(lam);
    r.S = S;
    return r;
}

static void report(const char *name, dres r, double fd_tol, double avf_tol, int want_mixed,
                   int want_stiff, int want_expl)
{
    int ok = r.ok_rc && r.replay_diff <= 1e-13 && r.adj_vs_fwd < avf_tol && r.fd_fwd < fd_tol &&
             r.fd_adj < fd_tol && r.stored_diff == 0.0 && r.nstored == r.nsteps && r.vjp2s_diff < avf_tol;
    if (want_mixed) ok = ok && r.nstiff > 0 && r.nstiff < r.nsteps && r.switches >= 1;
    if (want_stiff) ok = ok && r.nstiff == r.nsteps;
    if (want_expl) ok = ok && r.nstiff == 0;
    check(ok, name,
          "steps=%ld rej=%ld rodas4=%ld switches=%d replay=%.1e adj_vs_fwd=%.1e fd_fwd=%.1e "
          "fd_adj=%.1e stored=%ld stored_vs_replayed=%.1e vjp2s_vs_vjp2=%.1e",
          r.nsteps, r.rejected, r.nstiff, r.switches, r.replay_diff, r.adj_vs_fwd, r.fd_fwd, r.fd_adj,
          r.nstored, r.stored_diff, r.vjp2s_diff);
}

/* ---------------- test groups ---------------- */
static void test_derivs(void)
{
    tmodel nl3 = {3, 4, 1, nl3_f, nl3_jx, nl3_jp, nl3_hxx, nl3_hxp, 0.5, 0};
    tmodel chem = {5, 7, 1, chem_f, chem_jx, chem_jp, chem_hxx, chem_hxp, 0.0, 0};
    tmodel lin2 = {2, 2, 0, lin2_f, lin2_jx, lin2_jp, NULL, lin2_hxp, 0.0, 0};
    double x3[3] = {0.6, 0.4, 0.3}, p3[4] = {1.2, 0.8, 0.5, 0.9}, u3[1] = {0.1};
    double x5[5] = {0.7, 0.5, 0.02, 0.01, 0.3}, p5[7] = {10.0, 2.0, 0.3, 1.0, 1e3, 5e2, 2e3},
           u5[1] = {0.1};
    double x2[2] = {1.0, 0.5}, p2[2] = {0.7, 3.0};
    deriv_check("derivcheck_nl3", &nl3, 0.3, x3, p3, u3);
    deriv_check("derivcheck_chem", &chem, 0.0, x5, p5, u5);
    deriv_check("derivcheck_lin2", &lin2, 0.0, x2, p2, NULL);
}

static void test_nl3(void)
{
    enum { NT = 11 };
    tmodel tm = {3, 4, 1, nl3_f, nl3_jx, nl3_jp, nl3_hxx, nl3_hxp, 0.0, 0};
    double times[NT], u[NT], x0[3] = {0.6, 0.4, 0.3}, p[4] = {1.2, 0.8, 0.5, 0.9};
    const int methods[3] = {SYMODE_EXPLICIT, SYMODE_STIFF, SYMODE_AUTO};
    int i, im, na;
    for (i = 0; i < NT; i++) times[i] = 0.8 * i;
    for (i = 0; i < NT; i++) u[i] = 0.1 + 0.05 * (i % 3);
    for (na = 0; na < 2; na++) {
        tm.ct = na ? 0.5 : 0.0;
        for (im = 0; im < 3; im++) {
            char name[64];
            dres r = run_checks(&tm, na, methods[im], 1e-8, 1e-10, NT, times, x0, p, u, 1);
            sprintf(name, "nl3%s_%s", na ? "_nonaut" : "", mname(methods[im]));
            /* non-autonomous RODAS4: the integrator's df/dt difference quotient (increment
               ~1e-8) amplifies round-off, in the derivatives as in the map itself */
            report(name, r, na ? 1e-7 : 1e-8, na ? 1e-10 : 1e-12, 0, methods[im] == SYMODE_STIFF,
                   methods[im] != SYMODE_STIFF);
            free(r.S);
        }
    }
}

static void test_chem(void)
{
    enum { NI = 24, NT = NI + 1 };
    tmodel tm = {5, 7, 1, chem_f, chem_jx, chem_jp, chem_hxx, chem_hxp, 0.0, 0};
    double times[NT], u[NT], x0[5] = {1.0, 0.5, 0.0, 0.0, 0.0};
    double p[7] = {10.0, 2.0, 0.3, 1.0, 1e3, 5e2, 2e3};
    const int methods[3] = {SYMODE_AUTO, SYMODE_STIFF, SYMODE_EXPLICIT};
    int i, im, nt = g_quick ? 9 : NT;
    for (i = 0; i < NT; i++) times[i] = 0.25 * i;
    for (i = 0; i < NT; i++) u[i] = 0.05 + 0.2 * ((i * 7) % 11) / 11.0;
    for (im = 0; im < 3; im++) {
        char name[64];
        dres r = run_checks(&tm, 0, methods[im], 1e-7, 1e-10, nt, times, x0, p, u, !g_quick);
        sprintf(name, "chem_%s", mname(methods[im]));
        /* FD reference limited by round-off (stiff rate constants, thousands of explicit steps
           at the stability boundary for "explicit") */
        report(name, r, methods[im] == SYMODE_EXPLICIT ? 1e-6 : 1e-7, 1e-12,
               methods[im] == SYMODE_AUTO, methods[im] == SYMODE_STIFF,
               methods[im] == SYMODE_EXPLICIT);
        free(r.S);
    }
}

/* discrete gradients converge to the continuous one as rtol -> 0 (reference: rtol 1e-12) */
static void test_chem_convergence(void)
{
    enum { NT = 9 };
    tmodel tm = {5, 7, 1, chem_f, chem_jx, chem_jp, chem_hxx, chem_hxp, 0.0, 0};
    double times[NT], u[NT], x0[5] = {1.0, 0.5, 0.0, 0.0, 0.0};
    double p[7] = {10.0, 2.0, 0.3, 1.0, 1e3, 5e2, 2e3}, e[3], gmax = 0.0;
    const double tols[3] = {1e-5, 1e-7, 1e-9};
    dres ref, r;
    int i, j;
    if (g_quick) return; /* numerics only; the rtol 1e-12 reference is slow under valgrind */
    for (i = 0; i < NT; i++) times[i] = 0.25 * i;
    for (i = 0; i < NT; i++) u[i] = 0.05 + 0.2 * ((i * 7) % 11) / 11.0;
    ref = run_checks(&tm, 0, SYMODE_STIFF, 1e-12, 1e-16, NT, times, x0, p, u, 0);
    for (j = 0; j < 12; j++) gmax = fmax(gmax, fabs(ref.grad[j]));
    for (i = 0; i < 3; i++) {
        r = run_checks(&tm, 0, SYMODE_AUTO, tols[i], 1e-3 * tols[i], NT, times, x0, p, u, 0);
        e[i] = 0.0;
        for (j = 0; j < 12; j++)
            e[i] = fmax(e[i], fabs(r.grad[j] - ref.grad[j]) / (fabs(ref.grad[j]) + 1e-6 * gmax));
        free(r.S);
    }
    free(ref.S);
    check(ref.ok_rc && e[0] < 1e-3 && e[1] < 1e-5 && e[2] < 1e-7 && e[2] < e[1] && e[1] < e[0],
          "chem_gradient_vs_continuous",
          "max_j |g_j - gref_j| / (|gref_j| + 1e-6 max|gref|) at rtol 1e-5, 1e-7, 1e-9: %.1e %.1e %.1e", e[0], e[1],
          e[2]);
}

static void test_lin2(void)
{
    enum { NT = 9 };
    tmodel tm = {2, 2, 0, lin2_f, lin2_jx, lin2_jp, NULL, lin2_hxp, 0.0, 0};
    double times[NT], x0[2] = {1.0, 0.5}, p[2] = {0.7, 3.0}, xe[2], Se[8];
    const int methods[3] = {SYMODE_EXPLICIT, SYMODE_STIFF, SYMODE_AUTO};
    int i, im, k;
    for (i = 0; i < NT; i++) times[i] = 0.5 * i;
    for (im = 0; im < 3; im++) {
        char name[64];
        dres r = run_checks(&tm, 0, methods[im], 1e-10, 1e-12, NT, times, x0, p, NULL, !g_quick);
        double e = 0.0, smax = 0.0;
        sprintf(name, "lin2_%s", mname(methods[im]));
        report(name, r, 1e-8, 1e-12, 0, methods[im] == SYMODE_STIFF, 0);
        /* discrete sensitivities vs the exact continuous ones */
        for (i = 0; i < NT; i++) {
            lin2_exact(times[i], x0, p, xe, Se);
            for (k = 0; k < 8; k++) {
                e = fmax(e, fabs(r.S[i * 8 + k] - Se[k]));
                smax = fmax(smax, fabs(Se[k]));
            }
        }
        sprintf(name, "lin2_%s_vs_exact", mname(methods[im]));
        check(e / smax < 1e-7, name, "max |S_discrete - S_exact| / max|S| = %.2e (rtol 1e-10)",
              e / smax);
        free(r.S);
    }
}

/* observation at t0 only: grad_x0 = lam row 0, grad_p = 0; nt == 1 */
static void test_t0(void)
{
    enum { NT = 5 };
    tmodel tm = {3, 4, 1, nl3_f, nl3_jx, nl3_jp, nl3_hxx, nl3_hxp, 0.0, 0};
    symode_model m = {3, 4, 1, g_rhs, g_jac, NULL, 0};
    double times[NT] = {0, 0.5, 1, 1.5, 2}, u[NT] = {0.1, 0.1, 0.2, 0.1, 0.1};
    double x0[3] = {0.6, 0.4, 0.3}, p[4] = {1.2, 0.8, 0.5, 0.9}, xout[NT * 3], lam[NT * 3];
    double gx[3], gp[4], gx2[3], gp2[4], S[3 * 7];
    symode_tape *tape = symode_tape_new();
    int rc, rc2, i, ok;
    m.ctx = &tm;
    memset(lam, 0, sizeof(lam));
    lam[0] = 1.5; lam[1] = -2.0; lam[2] = 0.25;
    rc = symode_integrate_record(&m, NULL, NT, times, x0, p, u, xout, NULL, tape);
    rc2 = symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx, gp);
    ok = rc == 0 && rc2 == 0 && gx[0] == 1.5 && gx[1] == -2.0 && gx[2] == 0.25;
    for (i = 0; i < 4; i++) ok = ok && gp[i] == 0.0;
    /* adding a t0 observation to a later one shifts grad_x0 by exactly lam0 */
    for (i = 3; i < NT * 3; i++) lam[i] = wcoef(i, 1);
    rc2 |= symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx, gp);
    lam[0] = lam[1] = lam[2] = 0.0;
    rc2 |= symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx2, gp2);
    ok = ok && rc2 == 0 && fabs(gx[0] - gx2[0] - 1.5) < 1e-14 * (1 + fabs(gx[0])) &&
         fabs(gx[1] - gx2[1] + 2.0) < 1e-14 * (1 + fabs(gx[1])) &&
         fabs(gx[2] - gx2[2] - 0.25) < 1e-14 * (1 + fabs(gx[2]));
    for (i = 0; i < 4; i++) ok = ok && gp[i] == gp2[i];
    check(ok, "obs_at_t0", "rc=%d/%d grad_x0=(%g,%g,%g)", rc, rc2, gx[0], gx[1], gx[2]);

    /* nt == 1: no steps */
    rc = symode_integrate_record(&m, NULL, 1, times, x0, p, u, xout, NULL, tape);
    lam[0] = 1.0; lam[1] = 2.0; lam[2] = 3.0;
    rc2 = symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx, gp);
    rc2 |= symode_tape_forward(tape, &m, &DERIVS, p, u, S);
    ok = rc == 0 && rc2 == 0 && symode_tape_nsteps(tape) == 0 && gx[0] == 1.0 && gx[1] == 2.0 &&
         gx[2] == 3.0 && gp[0] == 0.0 && gp[3] == 0.0;
    for (i = 0; i < 21; i++) ok = ok && S[i] == ((i % 3 == i / 3 && i < 9) ? 1.0 : 0.0);
    check(ok, "single_time_point", "rc=%d/%d", rc, rc2);
    symode_tape_free(tape);
}

/* recording does not change the integrator's results or statistics */
static void test_bit_identical(void)
{
    enum { NT = 13 };
    tmodel tm = {5, 7, 1, chem_f, chem_jx, chem_jp, chem_hxx, chem_hxp, 0.0, 0};
    symode_model m = {5, 7, 1, g_rhs, g_jac, NULL, 0};
    double times[NT], u[NT], x0[5] = {1.0, 0.5, 0.0, 0.0, 0.0};
    double p[7] = {10.0, 2.0, 0.3, 1.0, 1e3, 5e2, 2e3}, xa[NT * 5], xb[NT * 5];
    symode_stats sa, sb;
    symode_tape *tape = symode_tape_new();
    int i, ra, rb;
    m.ctx = &tm;
    for (i = 0; i < NT; i++) times[i] = 0.25 * i;
    for (i = 0; i < NT; i++) u[i] = 0.05 + 0.2 * ((i * 7) % 11) / 11.0;
    ra = symode_integrate(&m, NULL, NT, times, x0, p, u, xa, &sa);
    rb = symode_integrate_record(&m, NULL, NT, times, x0, p, u, xb, &sb, tape);
    check(ra == 0 && rb == 0 && memcmp(xa, xb, sizeof(xa)) == 0 && sa.n_steps == sb.n_steps &&
              sa.n_rhs == sb.n_rhs && sa.n_switches == sb.n_switches &&
              symode_tape_nsteps(tape) == sb.n_accepted,
          "record_bit_identical", "steps=%ld rhs=%ld switches=%d", sb.n_steps, sb.n_rhs,
          sb.n_switches);
    symode_tape_free(tape);
}

static void test_errors(void)
{
    enum { NT = 9 };
    tmodel tm = {5, 7, 1, chem_f, chem_jx, chem_jp, chem_hxx, chem_hxp, 0.0, 0};
    symode_model m = {5, 7, 1, g_rhs, g_jac, NULL, 0};
    symode_options o;
    symode_derivs dnov2 = DERIVS;
    double times[NT], u[NT], x0[5] = {1.0, 0.5, 0.0, 0.0, 0.0};
    double p[7] = {10.0, 2.0, 0.3, 1.0, 1e3, 5e2, 2e3}, xout[NT * 5], lam[NT * 5], gx[5], gp[7];
    double S[NT * 5 * 12];
    symode_tape *tape = symode_tape_new();
    int i, r1, r2, r3, r4, r5, r6;
    m.ctx = &tm;
    for (i = 0; i < NT; i++) times[i] = 0.25 * i;
    for (i = 0; i < NT; i++) u[i] = 0.1;
    for (i = 0; i < NT * 5; i++) lam[i] = 1.0;
    symode_default_options(&o);
    o.method = SYMODE_STIFF;
    dnov2.vjp2 = NULL;
    dnov2.vjp2s = NULL;
    dnov2.jvp2 = NULL;
    r1 = symode_integrate_record(&m, &o, NT, times, x0, p, u, xout, NULL, tape);
    r2 = symode_tape_adjoint(tape, &m, &dnov2, p, u, lam, gx, gp);  /* needs vjp2 or vjp2s */
    r3 = symode_tape_forward(tape, &m, &dnov2, p, u, S);            /* needs jvp2 */
    m.jac = NULL;                                                   /* FD Jacobian recording */
    r4 = symode_integrate_record(&m, &o, NT, times, x0, p, u, xout, NULL, tape);
    m.jac = g_jac;
    r5 = symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx, gp);
    o.max_steps = 3;                                                /* failed recording */
    r6 = symode_integrate_record(&m, &o, NT, times, x0, p, u, xout, NULL, tape);
    r6 = r6 == SYMODE_ERR_MAXSTEPS &&
         symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx, gp) == SYMODE_ERR_ARGS &&
         symode_tape_replay(tape, &m, x0, p, u, xout) == SYMODE_ERR_ARGS;
    check(r1 == 0 && r2 == SYMODE_ERR_ARGS && r3 == SYMODE_ERR_ARGS && r4 == 0 &&
              r5 == SYMODE_ERR_ARGS && r6,
          "errors_args", "%d %d %d %d %d %d", r1, r2, r3, r4, r5, r6);
    symode_tape_free(tape);
    /* explicit-only tape: adjoint needs only vjp, forward works without jac_p (built from vjp) */
    {
        tmodel t3 = {3, 4, 1, nl3_f, nl3_jx, nl3_jp, nl3_hxx, nl3_hxp, 0.0, 0};
        symode_model m3 = {3, 4, 1, g_rhs, NULL, NULL, 0};
        symode_derivs donly = {NULL, g_vjp, NULL, NULL, NULL, NULL};
        double t3s[5] = {0, 0.5, 1, 1.5, 2}, u3[5] = {0.1, 0.1, 0.1, 0.1, 0.1};
        double x3[3] = {0.6, 0.4, 0.3}, p3[4] = {1.2, 0.8, 0.5, 0.9}, xo[15], S1[5 * 21],
               S2[5 * 21], l3[15], g1[3], q1[4], e = 0.0;
        int a1, a2, a3, a4;
        m3.ctx = &t3;
        o.method = SYMODE_EXPLICIT;
        o.max_steps = 0;
        for (i = 0; i < 15; i++) l3[i] = 1.0;
        tape = symode_tape_new();
        a1 = symode_integrate_record(&m3, &o, 5, t3s, x3, p3, u3, xo, NULL, tape);
        a2 = symode_tape_adjoint(tape, &m3, &donly, p3, u3, l3, g1, q1);
        a3 = symode_tape_forward(tape, &m3, &donly, p3, u3, S1);
        m3.jac = g_jac;
        a4 = symode_tape_forward(tape, &m3, &DERIVS, p3, u3, S2);
        for (i = 0; i < 5 * 21; i++) e = fmax(e, fabs(S1[i] - S2[i]));
        check(a1 == 0 && a2 == 0 && a3 == 0 && a4 == 0 && e < 1e-13, "explicit_vjp_only",
              "rc %d %d %d %d, |S(vjp-built J) - S(jac, jac_p)| = %.1e", a1, a2, a3, a4, e);
        symode_tape_free(tape);
    }
    /* stiff forward sensitivities: the second-order terms by rows (vjp2, the default when present) and
       by columns (jvp2 only) are the same derivative */
    {
        symode_derivs dfw = {g_jacp, g_vjp, NULL, g_jvp2, NULL, NULL};
        double S1[NT * 5 * 12], S2[NT * 5 * 12], e = 0.0, smax = 0.0;
        int b1, b2, b3;
        o.method = SYMODE_STIFF;
        o.max_steps = 0;
        tape = symode_tape_new();
        b1 = symode_integrate_record(&m, &o, NT, times, x0, p, u, xout, NULL, tape);
        b2 = symode_tape_forward(tape, &m, &DERIVS, p, u, S1);
        b3 = symode_tape_forward(tape, &m, &dfw, p, u, S2);
        for (i = 0; i < NT * 5 * 12; i++) {
            e = fmax(e, fabs(S1[i] - S2[i]));
            smax = fmax(smax, fabs(S2[i]));
        }
        check(b1 == 0 && b2 == 0 && b3 == 0 && symode_tape_nstiff(tape) > 0 && e <= 1e-12 * smax,
              "stiff_forward_vjp2_vs_jvp2", "rc %d %d %d, stiff steps %ld, max |dS| = %.1e of %.1e",
              b1, b2, b3, symode_tape_nstiff(tape), e, smax);
        symode_tape_free(tape);
    }
}

static double now(void) { return (double)clock() / CLOCKS_PER_SEC; }

static void test_perf(void)
{
    enum { NI = 100, NT = NI + 1 };
    tmodel tm = {5, 7, 1, chem_f, chem_jx, chem_jp, chem_hxx, chem_hxp, 0.0, 0};
    symode_model m = {5, 7, 1, g_rhs, g_jac, NULL, 0};
    symode_options o;
    double times[NT], u[NT], x0[5] = {1.0, 0.5, 0.0, 0.0, 0.0};
    double p[7] = {10.0, 2.0, 0.3, 1.0, 1e3, 5e2, 2e3}, xout[NT * 5], lam[NT * 5], gx[5], gp[7];
    double *S = malloc((size_t)NT * 5 * 12 * sizeof(double));
    symode_tape *tape = symode_tape_new();
    symode_stats st;
    int i, rep, nrep = g_quick ? 1 : 20, rc = 0, nt = g_quick ? 21 : NT;
    double t0, tf, tr, ta, tfw;
    m.ctx = &tm;
    for (i = 0; i < NT; i++) times[i] = 0.25 * i;
    for (i = 0; i < NI; i++) u[i] = 0.05 + 0.2 * ((i * 7) % 11) / 11.0;
    for (i = 0; i < NT * 5; i++) lam[i] = wcoef(i, 3);
    symode_default_options(&o);
    o.rtol = 1e-8; o.atol = 1e-12;
    t0 = now();
    for (rep = 0; rep < nrep; rep++) rc |= symode_integrate(&m, &o, nt, times, x0, p, u, xout, &st);
    tf = (now() - t0) / nrep;
    t0 = now();
    for (rep = 0; rep < nrep; rep++)
        rc |= symode_integrate_record(&m, &o, nt, times, x0, p, u, xout, NULL, tape);
    tr = (now() - t0) / nrep;
    t0 = now();
    for (rep = 0; rep < nrep; rep++) rc |= symode_tape_adjoint(tape, &m, &DERIVS, p, u, lam, gx, gp);
    ta = (now() - t0) / nrep;
    t0 = now();
    for (rep = 0; rep < nrep; rep++) rc |= symode_tape_forward(tape, &m, &DERIVS, p, u, S);
    tfw = (now() - t0) / nrep;
    printf("INFO perf_chemostat | steps=%ld (rodas4 %ld) solve %.3g ms, record %.3g ms, "
           "adjoint %.3g ms (%.2fx solve), forward(12 dirs) %.3g ms (%.2fx solve)\n",
           symode_tape_nsteps(tape), symode_tape_nstiff(tape), 1e3 * tf, 1e3 * tr, 1e3 * ta,
           ta / (tf > 0 ? tf : 1e-30), 1e3 * tfw, tfw / (tf > 0 ? tf : 1e-30));
    check(rc == 0, "perf_chemostat_runs", "rc=%d", rc);
    symode_tape_free(tape);
    free(S);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) g_quick = 1;
    test_derivs();
    test_nl3();
    test_chem();
    test_lin2();
    test_chem_convergence();
    test_t0();
    test_bit_identical();
    test_errors();
    test_perf();
    return check_summary();
}
