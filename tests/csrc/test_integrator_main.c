/*
 * Test driver for symode_integrator.c.  Prints one line per check:
 *   "OK <name> | <info>"  or  "FAIL <name> | <info>"
 * and a final "SUMMARY <n_ok> <n_fail>" line. Exit code 0 iff no FAIL.
 * Usage: test_integrator_main [--quick]   (--quick skips the slow explicit-only runs, for valgrind)
 */
#include "symode_integrator.h"
#include "symode_methods.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_check.h"

static int g_quick = 0;

static const char *mname(int method)
{
    return method == SYMODE_AUTO ? "auto" : method == SYMODE_EXPLICIT ? "explicit" : "stiff";
}

static symode_options mkopt(int method, double rtol, double atol)
{
    symode_options o;
    symode_default_options(&o);
    o.method = method;
    o.rtol = rtol;
    o.atol = atol;
    return o;
}

/* relative error helper: |a-b| / (|b| + floor) */
static double relerr(double a, double b, double floor_)
{
    return fabs(a - b) / (fabs(b) + floor_);
}

/* ============================ models ============================ */

/* x' = -p0 x */
static int decay_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                     double *xd)
{
    (void)ctx; (void)t; (void)u;
    xd[0] = -p[0] * x[0];
    return 0;
}
static int decay_jac(void *ctx, double t, const double *x, const double *p, const double *u,
                     double *J)
{
    (void)ctx; (void)t; (void)x; (void)u;
    J[0] = -p[0];
    return 0;
}

/* linear 3x3: x' = A x with A = V B V^{-1},
   B = [[a, b, 0], [-b, a, 0], [0, 0, c]],  V = [[1,1,0],[0,1,1],[0,0,1]] (unimodular). */
static const double LIN_A = -0.3, LIN_B = 2.0, LIN_C = -1.7;
static const double LIN_V[9] = {1, 1, 0, 0, 1, 1, 0, 0, 1};    /* row-major */
static const double LIN_VI[9] = {1, -1, 1, 0, 1, -1, 0, 0, 1}; /* row-major inverse */
typedef struct { double A[9]; } lin_ctx; /* row-major A */

static void mat3_mul(const double *X, const double *Y, double *Z)
{
    int i, j, k;
    for (i = 0; i < 3; i++)
        for (j = 0; j < 3; j++) {
            double s = 0.0;
            for (k = 0; k < 3; k++) s += X[3 * i + k] * Y[3 * k + j];
            Z[3 * i + j] = s;
        }
}
static void lin_setup(lin_ctx *c)
{
    double B[9] = {0}, T[9];
    B[0] = LIN_A; B[1] = LIN_B; B[3] = -LIN_B; B[4] = LIN_A; B[8] = LIN_C;
    mat3_mul(LIN_V, B, T);
    mat3_mul(T, LIN_VI, c->A);
}
static void lin_exact(double t, const double *x0, double *x)
{
    double E[9] = {0}, T[9], M[9];
    int i, j;
    double ea = exp(LIN_A * t);
    E[0] = ea * cos(LIN_B * t); E[1] = ea * sin(LIN_B * t);
    E[3] = -ea * sin(LIN_B * t); E[4] = ea * cos(LIN_B * t);
    E[8] = exp(LIN_C * t);
    mat3_mul(LIN_V, E, T);
    mat3_mul(T, LIN_VI, M);
    for (i = 0; i < 3; i++) {
        x[i] = 0.0;
        for (j = 0; j < 3; j++) x[i] += M[3 * i + j] * x0[j];
    }
}
static int lin_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                   double *xd)
{
    const lin_ctx *c = (const lin_ctx *)ctx;
    int i;
    (void)t; (void)p; (void)u;
    for (i = 0; i < 3; i++) xd[i] = c->A[3 * i] * x[0] + c->A[3 * i + 1] * x[1] + c->A[3 * i + 2] * x[2];
    return 0;
}
static int lin_jac(void *ctx, double t, const double *x, const double *p, const double *u,
                   double *J)
{
    const lin_ctx *c = (const lin_ctx *)ctx;
    int i, j;
    (void)t; (void)x; (void)p; (void)u;
    for (i = 0; i < 3; i++)
        for (j = 0; j < 3; j++) J[i + 3 * j] = c->A[3 * i + j];
    return 0;
}

/* piecewise constant input: x' = u0 - x; u1 = interval index, used to verify that the
   integrator never evaluates f outside [times[i], times[i+1]]. */
typedef struct { const double *times; int nt; long violations; } pwc_ctx;
static int pwc_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                   double *xd)
{
    pwc_ctx *c = (pwc_ctx *)ctx;
    int i = (int)u[1];
    (void)p;
    if (i < 0 || i >= c->nt - 1 || t < c->times[i] || t > c->times[i + 1]) c->violations++;
    xd[0] = u[0] - x[0];
    return 0;
}

/* rigid body (DETEST problem B5 / Krogh): nonlinear, non-stiff */
static int rigid_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                     double *xd)
{
    (void)ctx; (void)t; (void)p; (void)u;
    xd[0] = x[1] * x[2];
    xd[1] = -x[0] * x[2];
    xd[2] = -0.51 * x[0] * x[1];
    return 0;
}
static int rigid_jac(void *ctx, double t, const double *x, const double *p, const double *u,
                     double *J)
{
    (void)ctx; (void)t; (void)p; (void)u;
    J[0] = 0.0;            J[3] = x[2];           J[6] = x[1];
    J[1] = -x[2];          J[4] = 0.0;            J[7] = -x[0];
    J[2] = -0.51 * x[1];   J[5] = -0.51 * x[0];   J[8] = 0.0;
    return 0;
}

/* non-autonomous scalar: x' = x^2 cos t, exact x = 1/(1/x0 - sin t) */
static int nonaut_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                      double *xd)
{
    (void)ctx; (void)p; (void)u;
    xd[0] = x[0] * x[0] * cos(t);
    return 0;
}
static int nonaut_jac(void *ctx, double t, const double *x, const double *p, const double *u,
                      double *J)
{
    (void)ctx; (void)p; (void)u;
    J[0] = 2.0 * x[0] * cos(t);
    return 0;
}

/* manufactured non-autonomous problem: f(t,x) = g(x) + s(t) with g = rigid body and
   s(t) = x*'(t) - g(x*(t)), so x*(t) = (sin t, 0.5 + 0.5 cos t, exp(-0.3 t)) is the exact solution */
static void manu_exact(double t, double *x)
{
    x[0] = sin(t);
    x[1] = 0.5 + 0.5 * cos(t);
    x[2] = exp(-0.3 * t);
}
static int manu_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                    double *xd)
{
    double xs[3], gs[3], g[3];
    manu_exact(t, xs);
    rigid_rhs(ctx, t, xs, p, u, gs);
    rigid_rhs(ctx, t, x, p, u, g);
    xd[0] = g[0] + cos(t) - gs[0];
    xd[1] = g[1] - 0.5 * sin(t) - gs[1];
    xd[2] = g[2] - 0.3 * xs[2] - gs[2];
    return 0;
}

/* Robertson chemical kinetics */
static int rober_rhs(void *ctx, double t, const double *y, const double *p, const double *u,
                     double *yd)
{
    (void)ctx; (void)t; (void)p; (void)u;
    yd[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    yd[2] = 3e7 * y[1] * y[1];
    yd[1] = -yd[0] - yd[2];
    return 0;
}
static int rober_jac(void *ctx, double t, const double *y, const double *p, const double *u,
                     double *J)
{
    (void)ctx; (void)t; (void)p; (void)u;
    J[0] = -0.04; J[3] = 1e4 * y[2];                   J[6] = 1e4 * y[1];
    J[1] = 0.04;  J[4] = -1e4 * y[2] - 6e7 * y[1];     J[7] = -1e4 * y[1];
    J[2] = 0.0;   J[5] = 6e7 * y[1];                   J[8] = 0.0;
    return 0;
}

/* Van der Pol, y1' = y2, y2' = mu (1 - y1^2) y2 - y1, mu = p0 (period ~ (3 - 2 ln 2) mu) */
static int vdp_rhs(void *ctx, double t, const double *y, const double *p, const double *u,
                   double *yd)
{
    (void)ctx; (void)t; (void)u;
    yd[0] = y[1];
    yd[1] = p[0] * (1.0 - y[0] * y[0]) * y[1] - y[0];
    return 0;
}
static int vdp_jac(void *ctx, double t, const double *y, const double *p, const double *u,
                   double *J)
{
    (void)ctx; (void)t; (void)u;
    J[0] = 0.0;                                    J[2] = 1.0;
    J[1] = -2.0 * p[0] * y[0] * y[1] - 1.0;        J[3] = p[0] * (1.0 - y[0] * y[0]);
    return 0;
}

/* x' = -x, but NaN (mode 0) or an error return (mode 1) for t > 1.5 */
typedef struct { int mode; } bad_ctx;
static int bad_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                   double *xd)
{
    const bad_ctx *c = (const bad_ctx *)ctx;
    (void)p; (void)u;
    if (t > 1.5) {
        if (c->mode == 1) return -1;
        xd[0] = NAN;
        return 0;
    }
    xd[0] = -x[0];
    return 0;
}

/* Prothero-Robinson: x' = -lambda (x - g(t)) + g'(t), g = sin t, exact x = sin t (x0 = 0) */
static int pr_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                  double *xd)
{
    (void)ctx; (void)u;
    xd[0] = -p[0] * (x[0] - sin(t)) + cos(t);
    return 0;
}
static int pr_jac(void *ctx, double t, const double *x, const double *p, const double *u,
                  double *J)
{
    (void)ctx; (void)t; (void)x; (void)u;
    J[0] = -p[0];
    return 0;
}
/* Jacobian that fails: mode 0 -> NaN entries, mode 1 -> error return */
static int badjac_jac(void *ctx, double t, const double *x, const double *p, const double *u,
                      double *J)
{
    const bad_ctx *c = (const bad_ctx *)ctx;
    (void)t; (void)x; (void)p; (void)u;
    if (c->mode == 1) return 3;
    J[0] = NAN;
    return 0;
}

/* Monod chemostat with a stiff satellite uptake/conversion chain.
   states S, X, P, Q, R;  u0 = D;  p = S0, g, mumax, K, kup, krel, kconv
   mu = mumax S/(K+S)
   S' = (S0-S) D - g mu X,   X' = (mu - D) X
   P' = 0.5 mu X - kup P X + krel Q - D P
   Q' = kup P X - krel Q - kconv Q - D Q
   R' = kconv Q - D R */
static int chem_rhs(void *ctx, double t, const double *x, const double *p, const double *u,
                    double *xd)
{
    double S = x[0], X = x[1], P = x[2], Q = x[3], R = x[4], D = u[0];
    double mu = p[2] * S / (p[3] + S);
    (void)ctx; (void)t;
    xd[0] = (p[0] - S) * D - p[1] * mu * X;
    xd[1] = (mu - D) * X;
    xd[2] = 0.5 * mu * X - p[4] * P * X + p[5] * Q - D * P;
    xd[3] = p[4] * P * X - p[5] * Q - p[6] * Q - D * Q;
    xd[4] = p[6] * Q - D * R;
    return 0;
}
static int chem_jac(void *ctx, double t, const double *x, const double *p, const double *u,
                    double *J)
{
    double S = x[0], X = x[1], P = x[2], D = u[0];
    double mu = p[2] * S / (p[3] + S), mup = p[2] * p[3] / ((p[3] + S) * (p[3] + S));
    int k;
    (void)ctx; (void)t;
    for (k = 0; k < 25; k++) J[k] = 0.0;
#define JJ(i, j) J[(i) + 5 * (j)]
    JJ(0, 0) = -D - p[1] * mup * X;  JJ(0, 1) = -p[1] * mu;
    JJ(1, 0) = mup * X;              JJ(1, 1) = mu - D;
    JJ(2, 0) = 0.5 * mup * X;        JJ(2, 1) = 0.5 * mu - p[4] * P;
    JJ(2, 2) = -p[4] * X - D;        JJ(2, 3) = p[5];
    JJ(3, 1) = p[4] * P;             JJ(3, 2) = p[4] * X;
    JJ(3, 3) = -p[5] - p[6] - D;
    JJ(4, 3) = p[6];                 JJ(4, 4) = -D;
#undef JJ
    return 0;
}

/* ============================ tests ============================ */

static void test_jacobians(void)
{
    /* analytic test Jacobians vs central differences (validates the test models themselves) */
    struct { const char *name; int n; symode_rhs_fn f; symode_jac_fn j; double x[5]; double p[7];
             double u[1]; } cases[5];
    int c, i, k;
    memset(cases, 0, sizeof(cases));
    cases[0].name = "jaccheck_rigid"; cases[0].n = 3; cases[0].f = rigid_rhs; cases[0].j = rigid_jac;
    cases[0].x[0] = 0.3; cases[0].x[1] = 0.7; cases[0].x[2] = -0.4;
    cases[1].name = "jaccheck_rober"; cases[1].n = 3; cases[1].f = rober_rhs; cases[1].j = rober_jac;
    cases[1].x[0] = 0.8; cases[1].x[1] = 2e-5; cases[1].x[2] = 0.2;
    cases[2].name = "jaccheck_vdp"; cases[2].n = 2; cases[2].f = vdp_rhs; cases[2].j = vdp_jac;
    cases[2].x[0] = 1.5; cases[2].x[1] = -0.3; cases[2].p[0] = 1000.0;
    cases[3].name = "jaccheck_chemostat"; cases[3].n = 5; cases[3].f = chem_rhs; cases[3].j = chem_jac;
    cases[3].x[0] = 1.3; cases[3].x[1] = 2.1; cases[3].x[2] = 0.01; cases[3].x[3] = 0.002;
    cases[3].x[4] = 0.4;
    cases[3].p[0] = 10; cases[3].p[1] = 2; cases[3].p[2] = 0.3; cases[3].p[3] = 1;
    cases[3].p[4] = 1e3; cases[3].p[5] = 5e2; cases[3].p[6] = 2e3; cases[3].u[0] = 0.1;
    cases[4].name = "jaccheck_nonaut"; cases[4].n = 1; cases[4].f = nonaut_rhs; cases[4].j = nonaut_jac;
    cases[4].x[0] = 0.7;
    for (c = 0; c < 5; c++) {
        double J[25], fp[5], fm[5], x[5], maxerr = 0.0;
        int n = cases[c].n;
        cases[c].j(NULL, 0.3, cases[c].x, cases[c].p, cases[c].u, J);
        for (k = 0; k < n; k++) {
            double d = 1e-6 * fmax(fabs(cases[c].x[k]), 1e-3);
            memcpy(x, cases[c].x, sizeof(x));
            x[k] += d;
            cases[c].f(NULL, 0.3, x, cases[c].p, cases[c].u, fp);
            x[k] -= 2 * d;
            cases[c].f(NULL, 0.3, x, cases[c].p, cases[c].u, fm);
            for (i = 0; i < n; i++) {
                double fd = (fp[i] - fm[i]) / (2 * d);
                maxerr = fmax(maxerr, fabs(fd - J[i + n * k]) / (fabs(J[i + n * k]) + 1e-3));
            }
        }
        check(maxerr < 1e-5, cases[c].name, "max rel err %.2e", maxerr);
    }
}

static void test_decay(void)
{
    const int methods[3] = {SYMODE_EXPLICIT, SYMODE_STIFF, SYMODE_AUTO};
    const double rtols[2] = {1e-8, 1e-10};
    double times[11], xout[11], p[1] = {0.7}, x0[1] = {2.0};
    symode_model m = {1, 1, 0, decay_rhs, decay_jac, NULL, 0};
    int im, ir, i;
    char name[64];
    for (i = 0; i < 11; i++) times[i] = 0.5 * i;
    for (im = 0; im < 3; im++)
        for (ir = 0; ir < 2; ir++) {
            symode_options o = mkopt(methods[im], rtols[ir], rtols[ir] * 1e-3);
            symode_stats st;
            double maxerr = 0.0;
            int rc = symode_integrate(&m, &o, 11, times, x0, p, NULL, xout, &st);
            for (i = 0; i < 11; i++) maxerr = fmax(maxerr, relerr(xout[i], 2.0 * exp(-0.7 * times[i]), 0.0));
            sprintf(name, "decay_%s_%g", mname(methods[im]), rtols[ir]);
            check(rc == 0 && maxerr <= 10 * rtols[ir], name, "rc=%d relerr=%.2e (%.1f*rtol) steps=%ld",
                  rc, maxerr, maxerr / rtols[ir], st.n_steps);
        }
}

static void test_lin3(void)
{
    const int methods[3] = {SYMODE_EXPLICIT, SYMODE_STIFF, SYMODE_AUTO};
    const double rtols[2] = {1e-8, 1e-10};
    enum { NT = 21 };
    double times[NT], xout[NT * 3], x0[3] = {1.0, -0.5, 2.0}, ex[3];
    lin_ctx c;
    symode_model m = {3, 0, 0, lin_rhs, lin_jac, NULL, 0};
    int im, ir, i, k, fd;
    char name[64];
    lin_setup(&c);
    m.ctx = &c;
    for (i = 0; i < NT; i++) times[i] = 0.5 * i;
    for (fd = 0; fd < 2; fd++)
        for (im = 0; im < 3; im++)
            for (ir = 0; ir < 2; ir++) {
                symode_options o = mkopt(methods[im], rtols[ir], rtols[ir] * 1e-3);
                symode_stats st;
                double maxerr = 0.0, scale = 0.0;
                int rc;
                if (fd && methods[im] == SYMODE_EXPLICIT) continue;
                m.jac = fd ? NULL : lin_jac;
                rc = symode_integrate(&m, &o, NT, times, x0, NULL, NULL, xout, &st);
                for (i = 0; i < NT; i++) {
                    lin_exact(times[i], x0, ex);
                    for (k = 0; k < 3; k++) scale = fmax(scale, fabs(ex[k]));
                    for (k = 0; k < 3; k++) maxerr = fmax(maxerr, fabs(xout[3 * i + k] - ex[k]));
                }
                maxerr /= scale;
                sprintf(name, "lin3_%s%s_%g", mname(methods[im]), fd ? "_fdjac" : "", rtols[ir]);
                /* non-stiff problem: AUTO must stay explicit */
                check(rc == 0 && maxerr <= 10 * rtols[ir] &&
                          (methods[im] != SYMODE_AUTO || st.n_switches == 0),
                      name, "rc=%d err/max|x|=%.2e (%.1f*rtol) steps=%ld switches=%d", rc, maxerr,
                      maxerr / rtols[ir], st.n_steps, st.n_switches);
            }
}

static void test_pwc(void)
{
    const int methods[3] = {SYMODE_EXPLICIT, SYMODE_STIFF, SYMODE_AUTO};
    enum { NT = 11 };
    double times[NT] = {0.0, 0.3, 0.35, 1.0, 2.5, 2.50001, 3.0, 4.7, 5.0, 7.5, 10.0};
    double u[2 * (NT - 1)], xout[NT], x0[1] = {0.5};
    int im, i;
    char name[64];
    for (i = 0; i < NT - 1; i++) {
        u[2 * i] = (i % 3 == 0) ? 2.0 : (i % 3 == 1 ? -1.0 : 0.25 * i);
        u[2 * i + 1] = i;
    }
    for (im = 0; im < 3; im++) {
        pwc_ctx c = {times, NT, 0};
        symode_model m = {1, 0, 2, pwc_rhs, NULL, NULL, 0};
        symode_options o = mkopt(methods[im], 1e-10, 1e-12);
        symode_stats st;
        double x = x0[0], maxerr = 0.0;
        int rc;
        m.ctx = &c;
        rc = symode_integrate(&m, &o, NT, times, x0, NULL, u, xout, &st);
        for (i = 0; i < NT - 1; i++) {
            x = u[2 * i] + (x - u[2 * i]) * exp(-(times[i + 1] - times[i]));
            maxerr = fmax(maxerr, fabs(xout[i + 1] - x));
        }
        sprintf(name, "pwc_%s", mname(methods[im]));
        check(rc == 0 && maxerr < 1e-8 && c.violations == 0 && xout[0] == x0[0], name,
              "rc=%d maxerr=%.2e outside-interval evals=%ld steps=%ld", rc, maxerr, c.violations,
              st.n_steps);
    }
}

/* fixed-step run: h0 = hmax = H, huge tolerances -> every step accepted with h = H */
static double fixed_step_error(symode_model *m, int method, double T, double H, const double *x0,
                               const double *xref, const double *p)
{
    double times[2] = {0.0, T}, xout[6];
    symode_options o = mkopt(method, 1e6, 1e6);
    symode_stats st;
    double err = 0.0;
    int k, rc;
    o.h0 = H;
    o.hmax = H;
    rc = symode_integrate(m, &o, 2, times, x0, p, NULL, xout, &st);
    if (rc != 0 || st.n_rejected != 0 || st.n_accepted != (long)floor(T / H + 0.5)) return NAN;
    for (k = 0; k < m->nx; k++) err = fmax(err, fabs(xout[m->nx + k] - xref[k]));
    return err;
}

/* observed orders log2(e(H)/e(H/2)) for H = H0, H0/2, H0/4 must all be >= pexp - 0.35 and the
   last (most asymptotic) one <= pexp + 0.35; with at_least only the lower bound is checked
   (special problems can show superconvergence) */
static void order_test(const char *name, symode_model *m, int method, double T, double H0,
                       const double *x0, const double *xref, const double *p, double pexp,
                       int at_least)
{
    double e[4], ord[3];
    int i, ok = 1;
    for (i = 0; i < 4; i++) e[i] = fixed_step_error(m, method, T, H0 / (1 << i), x0, xref, p);
    for (i = 0; i < 3; i++) {
        ord[i] = log2(e[i] / e[i + 1]);
        if (!(ord[i] > pexp - 0.35)) ok = 0;
        if (i == 2 && !at_least && !(ord[i] < pexp + 0.35)) ok = 0;
    }
    check(ok, name, "errors %.2e %.2e %.2e %.2e observed orders %.2f %.2f %.2f (expected %g)", e[0],
          e[1], e[2], e[3], ord[0], ord[1], ord[2], pexp);
}

static void test_order(void)
{
    symode_model rigid = {3, 0, 0, rigid_rhs, rigid_jac, NULL, 0};
    symode_model na = {1, 0, 0, nonaut_rhs, nonaut_jac, NULL, 1};
    double x0[3] = {0.0, 1.0, 1.0}, xref[3], xref2[3], times[2] = {0.0, 10.0};
    double nx0[1] = {0.5}, nref[1];
    symode_options o;
    symode_stats st;
    double diff = 0.0;
    int k, rc1, rc2;
    double out[6];

    /* reference for the rigid body: DOPRI5 and RODAS4 at tight tolerance must agree */
    o = mkopt(SYMODE_EXPLICIT, 1e-14, 1e-16);
    rc1 = symode_integrate(&rigid, &o, 2, times, x0, NULL, NULL, out, &st);
    memcpy(xref, out + 3, sizeof(xref));
    o = mkopt(SYMODE_STIFF, 1e-13, 1e-15);
    rc2 = symode_integrate(&rigid, &o, 2, times, x0, NULL, NULL, out, &st);
    memcpy(xref2, out + 3, sizeof(xref2));
    for (k = 0; k < 3; k++) diff = fmax(diff, fabs(xref[k] - xref2[k]));
    check(rc1 == 0 && rc2 == 0 && diff < 1e-11, "rigid_reference_agree", "dp5 vs rodas4 diff %.2e",
          diff);

    order_test("order_dp5_rigid", &rigid, SYMODE_EXPLICIT, 10.0, 0.2, x0, xref, NULL, 5.0, 0);
    order_test("order_rodas4_rigid", &rigid, SYMODE_STIFF, 10.0, 0.2, x0, xref, NULL, 4.0, 0);

    /* non-autonomous scalar with exact solution (exercises the d_i f_t terms of RODAS4) */
    nref[0] = 1.0 / (1.0 / nx0[0] - sin(4.0));
    order_test("order_dp5_nonaut", &na, SYMODE_EXPLICIT, 4.0, 0.4, nx0, nref, NULL, 5.0, 1);
    order_test("order_rodas4_nonaut", &na, SYMODE_STIFF, 4.0, 0.2, nx0, nref, NULL, 4.0, 1);
    {
        symode_model mm = {3, 0, 0, manu_rhs, rigid_jac, NULL, 1};
        double mx0[3], mref[3], e_aut, e_naut;
        manu_exact(0.0, mx0);
        manu_exact(5.0, mref);
        order_test("order_dp5_manufactured", &mm, SYMODE_EXPLICIT, 5.0, 0.125, mx0, mref, NULL, 5.0, 0);
        order_test("order_rodas4_manufactured", &mm, SYMODE_STIFF, 5.0, 0.25, mx0, mref, NULL, 4.0, 0);
        mm.jac = NULL;
        order_test("order_rodas4_manufactured_fdjac", &mm, SYMODE_STIFF, 5.0, 0.25, mx0, mref, NULL,
                   4.0, 0);
        mm.jac = rigid_jac;
        /* without the df/dt terms (flag off) the method must be visibly less accurate */
        e_naut = fixed_step_error(&mm, SYMODE_STIFF, 5.0, 0.025, mx0, mref, NULL);
        mm.nonautonomous = 0;
        e_aut = fixed_step_error(&mm, SYMODE_STIFF, 5.0, 0.025, mx0, mref, NULL);
        check(e_aut > 100.0 * e_naut, "rodas4_nonautonomous_flag",
              "err with df/dt %.2e, without %.2e", e_naut, e_aut);
    }

    /* tolerance proportionality (adaptive): error must drop when rtol drops */
    {
        const int methods[2] = {SYMODE_EXPLICIT, SYMODE_STIFF};
        int im, ir;
        for (im = 0; im < 2; im++) {
            double errs[4];
            int ok = 1;
            for (ir = 0; ir < 4; ir++) {
                double rtol = pow(10.0, -4.0 - 2.0 * ir);
                o = mkopt(methods[im], rtol, rtol);
                symode_integrate(&rigid, &o, 2, times, x0, NULL, NULL, out, &st);
                errs[ir] = 0.0;
                for (k = 0; k < 3; k++) errs[ir] = fmax(errs[ir], fabs(out[3 + k] - xref[k]));
                if (errs[ir] > 50.0 * rtol) ok = 0;
                if (ir > 0 && !(errs[ir] < errs[ir - 1] / 10.0)) ok = 0;
            }
            check(ok, methods[im] == SYMODE_EXPLICIT ? "tolscale_dp5" : "tolscale_rodas4",
                  "errors at rtol 1e-4,1e-6,1e-8,1e-10: %.2e %.2e %.2e %.2e", errs[0], errs[1],
                  errs[2], errs[3]);
        }
    }
}

static void test_robertson(void)
{
    enum { NT = 8 };
    const double times[NT] = {0.0, 0.4, 4.0, 40.0, 400.0, 4000.0, 4e4, 1e5};
    /* reference values at t = 40 (10 significant digits, Hairer-Wanner test set) */
    const double y40[3] = {0.7158270687, 9.185534764e-06, 0.2841637457};
    double x0[3] = {1.0, 0.0, 0.0}, ref[NT * 3], out[NT * 3];
    symode_model m = {3, 0, 0, rober_rhs, rober_jac, NULL, 0};
    symode_options o;
    symode_stats st, st_auto;
    double e;
    int rc, i, k, fd;

    o = mkopt(SYMODE_STIFF, 1e-12, 1e-20);
    rc = symode_integrate(&m, &o, NT, times, x0, NULL, NULL, ref, &st);
    e = 0.0;
    for (k = 0; k < 3; k++) e = fmax(e, relerr(ref[3 * 3 + k], y40[k], 0.0));
    check(rc == 0 && e < 1e-8, "robertson_reference_t40", "rc=%d y(40)=(%.10f, %.10e, %.10f) relerr %.2e steps=%ld",
          rc, ref[9], ref[10], ref[11], e, st.n_steps);
    e = 0.0;
    for (i = 0; i < NT; i++) e = fmax(e, fabs(ref[3 * i] + ref[3 * i + 1] + ref[3 * i + 2] - 1.0));
    check(rc == 0 && e < 1e-12, "robertson_mass_conservation", "max |sum-1| %.2e", e);

    for (fd = 0; fd < 2; fd++) {
        const int methods[2] = {SYMODE_STIFF, SYMODE_AUTO};
        int im;
        m.jac = fd ? NULL : rober_jac;
        for (im = 0; im < 2; im++) {
            char name[64];
            o = mkopt(methods[im], 1e-6, 1e-12);
            rc = symode_integrate(&m, &o, NT, times, x0, NULL, NULL, out, &st);
            e = 0.0;
            for (i = 1; i < NT; i++)
                for (k = 0; k < 3; k++) e = fmax(e, relerr(out[3 * i + k], ref[3 * i + k], 1e-10));
            sprintf(name, "robertson_%s%s_rtol1e-6", mname(methods[im]), fd ? "_fdjac" : "");
            check(rc == 0 && e < 1e-5 && st.n_steps < 400 && st.method_used == SYMODE_STIFF &&
                      (methods[im] == SYMODE_STIFF || st.n_switches >= 1),
                  name, "rc=%d max relerr %.2e steps=%ld (acc %ld rej %ld) rhs=%ld jac=%ld switches=%d",
                  rc, e, st.n_steps, st.n_accepted, st.n_rejected, st.n_rhs, st.n_jac, st.n_switches);
        }
    }
    m.jac = rober_jac;

    /* auto vs explicit-only on [0, 40] */
    {
        const double t2[2] = {0.0, 40.0};
        double o2[6];
        o = mkopt(SYMODE_AUTO, 1e-6, 1e-12);
        rc = symode_integrate(&m, &o, 2, t2, x0, NULL, NULL, o2, &st_auto);
        if (!g_quick) {
            o = mkopt(SYMODE_EXPLICIT, 1e-6, 1e-12);
            rc |= symode_integrate(&m, &o, 2, t2, x0, NULL, NULL, o2, &st);
        } else {
            st.n_steps = 1000000; /* skip the slow run */
        }
        check(rc == 0 && st_auto.n_steps * 20 < st.n_steps && st_auto.n_switches >= 1, "robertson_auto_vs_explicit",
              "steps auto=%ld explicit=%ld%s", st_auto.n_steps, st.n_steps, g_quick ? " (skipped)" : "");
    }
}

static void test_vdp(void)
{
    enum { NT = 31 };
    double times[NT], ref[NT * 2], out[NT * 2], x0[2] = {2.0, 0.0}, p[1] = {1000.0};
    symode_model m = {2, 1, 0, vdp_rhs, vdp_jac, NULL, 0};
    symode_options o;
    symode_stats st;
    int rc, i, im, nchk;
    const int methods[2] = {SYMODE_STIFF, SYMODE_AUTO};

    for (i = 0; i < NT; i++) times[i] = 100.0 * i;
    o = mkopt(SYMODE_STIFF, 1e-11, 1e-11);
    rc = symode_integrate(&m, &o, NT, times, x0, p, NULL, ref, &st);
    check(rc == 0, "vdp_reference", "rc=%d steps=%ld", rc, st.n_steps);

    for (im = 0; im < 2; im++) {
        char name[64];
        double e = 0.0;
        o = mkopt(methods[im], 1e-7, 1e-7);
        rc = symode_integrate(&m, &o, NT, times, x0, p, NULL, out, &st);
        /* compare y1 on the slow manifold (|y2_ref| small, away from the relaxation jumps) */
        nchk = 0;
        for (i = 1; i < NT; i++) {
            if (fabs(ref[2 * i + 1]) > 0.01) continue;
            e = fmax(e, fabs(out[2 * i] - ref[2 * i]));
            nchk++;
        }
        sprintf(name, "vdp_mu1000_%s", mname(methods[im]));
        check(rc == 0 && e < 1e-4 && nchk > 20 && st.method_used == SYMODE_STIFF &&
                  st.n_steps < 20000,
              name, "rc=%d max |dy1| %.2e over %d points, steps=%ld (rej %ld) switches=%d", rc, e,
              nchk, st.n_steps, st.n_rejected, st.n_switches);
    }

    /* explicit only with a small step budget must fail cleanly in interval 2 */
    {
        const double t3[5] = {0.0, 1.0, 2.0, 300.0, 600.0};
        double o3[10];
        int ok;
        o = mkopt(SYMODE_EXPLICIT, 1e-6, 1e-6);
        o.max_steps = 20000;
        rc = symode_integrate(&m, &o, 5, t3, x0, p, NULL, o3, &st);
        ok = rc == SYMODE_ERR_MAXSTEPS && st.fail_interval == 2 && st.fail_t > 2.0 &&
             st.fail_t < 300.0 && st.n_steps == 20000 && o3[0] == 2.0 && o3[1] == 0.0 &&
             isfinite(o3[2]) && isfinite(o3[4]) && isnan(o3[6]) && isnan(o3[9]);
        check(ok, "vdp_explicit_maxsteps", "rc=%d (%s) fail_interval=%d fail_t=%g steps=%ld", rc,
              symode_strerror(rc), st.fail_interval, st.fail_t, st.n_steps);
    }
}

static void test_errors(void)
{
    const int methods[3] = {SYMODE_EXPLICIT, SYMODE_STIFF, SYMODE_AUTO};
    double times[4] = {0.0, 1.0, 2.0, 3.0}, x0[1] = {1.0}, out[4];
    int im, mode, rc;
    char name[64];
    for (mode = 0; mode < 2; mode++)
        for (im = 0; im < 3; im++) {
            bad_ctx c;
            symode_model m = {1, 0, 0, bad_rhs, NULL, NULL, 0};
            symode_options o = mkopt(methods[im], 1e-8, 1e-10);
            symode_stats st;
            int expect = mode == 0 ? SYMODE_ERR_NONFINITE : SYMODE_ERR_RHS;
            c.mode = mode;
            m.ctx = &c;
            rc = symode_integrate(&m, &o, 4, times, x0, NULL, NULL, out, &st);
            sprintf(name, "%s_%s", mode == 0 ? "nan_rhs" : "rhs_error", mname(methods[im]));
            check(rc == expect && st.fail_interval == 1 && st.fail_t >= 1.0 && st.fail_t <= 1.5 &&
                      fabs(out[1] - exp(-1.0)) < 1e-7 && isnan(out[2]) && isnan(out[3]),
                  name, "rc=%d (%s) fail_interval=%d fail_t=%.15g steps=%ld", rc,
                  symode_strerror(rc), st.fail_interval, st.fail_t, st.n_steps);
        }
    {
        symode_model m = {1, 1, 0, decay_rhs, decay_jac, NULL, 0};
        double p[1] = {1.0}, xnan[1] = {NAN}, tbad[3] = {0.0, 1.0, 1.0};
        symode_stats st;
        rc = symode_integrate(&m, NULL, 4, times, xnan, p, NULL, out, &st);
        check(rc == SYMODE_ERR_NONFINITE && st.fail_interval == 0, "x0_nan", "rc=%d", rc);
        rc = symode_integrate(&m, NULL, 3, tbad, x0, p, NULL, out, &st);
        check(rc == SYMODE_ERR_ARGS, "args_times_not_increasing", "rc=%d", rc);
        m.nx = 0;
        rc = symode_integrate(&m, NULL, 3, times, x0, p, NULL, out, &st);
        check(rc == SYMODE_ERR_ARGS, "args_nx0", "rc=%d", rc);
        m.nx = 1;
        rc = symode_integrate(&m, NULL, 4, times, x0, NULL, NULL, out, &st);
        check(rc == SYMODE_ERR_ARGS, "args_p_null", "rc=%d", rc);
        rc = symode_integrate(&m, NULL, 4, times, x0, p, NULL, out, NULL);
        check(rc == 0 && fabs(out[3] - exp(-3.0)) < 1e-5, "defaults_null_opt_stats", "rc=%d x(3)=%.8f", rc, out[3]);
        rc = symode_integrate(&m, NULL, 1, times, x0, p, NULL, out, &st);
        check(rc == 0 && out[0] == 1.0, "single_time_point", "rc=%d", rc);
        check(strcmp(symode_strerror(SYMODE_ERR_MAXSTEPS), symode_strerror(SYMODE_ERR_HMIN)) != 0,
              "strerror", "%s", symode_strerror(SYMODE_ERR_SINGULAR));
    }
}

static void test_stiff_extra(void)
{
    /* Prothero-Robinson, lambda = 1e6: L-stable, stiffly accurate method takes large steps */
    {
        const int methods[2] = {SYMODE_STIFF, SYMODE_AUTO};
        double times[11], out[11], x0[1] = {0.0}, p[1] = {1e6};
        symode_model m = {1, 1, 0, pr_rhs, pr_jac, NULL, 1};
        int im, i;
        for (i = 0; i < 11; i++) times[i] = i;
        for (im = 0; im < 2; im++) {
            symode_options o = mkopt(methods[im], 1e-6, 1e-8);
            symode_stats st;
            double e = 0.0;
            char name[64];
            int rc = symode_integrate(&m, &o, 11, times, x0, p, NULL, out, &st);
            for (i = 0; i < 11; i++) e = fmax(e, fabs(out[i] - sin(times[i])));
            sprintf(name, "prothero_robinson_%s", mname(methods[im]));
            check(rc == 0 && e < 1e-6 && st.n_steps < 500 && st.method_used == SYMODE_STIFF, name,
                  "rc=%d maxerr=%.2e steps=%ld switches=%d", rc, e, st.n_steps, st.n_switches);
        }
    }
    /* failing Jacobian: NaN -> NONFINITE, nonzero return -> RHS */
    {
        double times[3] = {0.0, 1.0, 2.0}, out[3], x0[1] = {1.0};
        int mode;
        for (mode = 0; mode < 2; mode++) {
            bad_ctx c;
            symode_model m = {1, 0, 0, bad_rhs, badjac_jac, NULL, 0};
            symode_options o = mkopt(SYMODE_STIFF, 1e-6, 1e-8);
            symode_stats st;
            int rc, expect = mode == 0 ? SYMODE_ERR_NONFINITE : SYMODE_ERR_RHS;
            c.mode = mode;
            m.ctx = &c;
            rc = symode_integrate(&m, &o, 3, times, x0, NULL, NULL, out, &st);
            check(rc == expect && st.fail_interval == 0 && out[0] == 1.0 && isnan(out[1]),
                  mode == 0 ? "jac_nan" : "jac_error", "rc=%d fail_interval=%d", rc,
                  st.fail_interval);
        }
    }
}

static void test_workspace_and_hint(void)
{
    /* symode_integrate_ws with a caller buffer gives bit-identical results; huge h0 is clipped */
    lin_ctx c;
    symode_model m = {3, 0, 0, lin_rhs, NULL, NULL, 0};
    double times[6] = {0.0, 0.1, 0.2, 1.0, 5.0, 6.0}, x0[3] = {1.0, 2.0, 3.0}, a[18], b[18], ex[3];
    const int methods[3] = {SYMODE_EXPLICIT, SYMODE_STIFF, SYMODE_AUTO};
    void *work;
    int im, i, rc1, rc2, same = 1;
    double maxerr = 0.0;
    lin_setup(&c);
    m.ctx = &c;
    work = malloc(symode_workspace_size(3));
    for (im = 0; im < 3; im++) {
        symode_options o = mkopt(methods[im], 1e-9, 1e-12);
        o.h0 = 1e3;
        rc1 = symode_integrate(&m, &o, 6, times, x0, NULL, NULL, a, NULL);
        rc2 = symode_integrate_ws(&m, &o, 6, times, x0, NULL, NULL, b, NULL, work);
        if (rc1 || rc2 || memcmp(a, b, sizeof(a)) != 0) same = 0;
        for (i = 0; i < 6; i++) {
            int k;
            lin_exact(times[i], x0, ex);
            for (k = 0; k < 3; k++) maxerr = fmax(maxerr, fabs(a[3 * i + k] - ex[k]));
        }
    }
    free(work);
    check(same && maxerr < 1e-7, "workspace_and_big_h0", "identical=%d maxerr=%.2e", same, maxerr);
}

static void test_chemostat(void)
{
    enum { NI = 100, NT = NI + 1 };
    double times[NT], u[NI], ref[NT * 5], out[NT * 5];
    double x0[5] = {1.0, 0.5, 0.0, 0.0, 0.0};
    double p[7] = {10.0, 2.0, 0.3, 1.0, 1e3, 5e2, 2e3};
    symode_model m = {5, 7, 1, chem_rhs, chem_jac, NULL, 0};
    symode_options o;
    symode_stats st;
    int rc, i, k, im;
    const int methods[3] = {SYMODE_AUTO, SYMODE_STIFF, SYMODE_EXPLICIT};

    for (i = 0; i < NT; i++) times[i] = 0.25 * i;
    for (i = 0; i < NI; i++) u[i] = 0.05 + 0.2 * ((i * 7) % 11) / 11.0;
    o = mkopt(SYMODE_STIFF, 1e-12, 1e-16);
    rc = symode_integrate(&m, &o, NT, times, x0, p, u, ref, &st);
    check(rc == 0, "chemostat_reference", "rc=%d steps=%ld X(end)=%.6f P(end)=%.6e", rc,
          st.n_steps, ref[NI * 5 + 1], ref[NI * 5 + 2]);
    for (im = 0; im < 3; im++) {
        int fd;
        for (fd = 0; fd < 2; fd++) {
            char name[64];
            double e = 0.0;
            if (im == 2 && fd) continue;
            m.jac = fd ? NULL : chem_jac;
            o = mkopt(methods[im], 1e-9, 1e-13);
            rc = symode_integrate(&m, &o, NT, times, x0, p, u, out, &st);
            for (i = 1; i < NT; i++)
                for (k = 0; k < 5; k++) e = fmax(e, relerr(out[5 * i + k], ref[5 * i + k], 1e-9));
            sprintf(name, "chemostat_%s%s", mname(methods[im]), fd ? "_fdjac" : "");
            check(rc == 0 && e < 1e-6 &&
                      (methods[im] != SYMODE_AUTO || (st.n_switches >= 1 && st.method_used == SYMODE_STIFF)),
                  name, "rc=%d max relerr %.2e steps=%ld rej=%ld rhs=%ld jac=%ld lu=%ld switches=%d", rc, e,
                  st.n_steps, st.n_rejected, st.n_rhs, st.n_jac, st.n_lu, st.n_switches);
        }
    }
}

/* ---------------- LU factors (symode_methods.h) ---------------- */
static unsigned g_seed = 12345u;
static double urand(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return ((g_seed >> 8) & 0xFFFFFF) / (double)0x1000000;
}

/* sort the entries of each compressed column by row (lu_factor's L columns are in elimination order) */
static void sort_columns(int n, const int *ptr, int *idx, double *val)
{
    int k, a, b;
    for (k = 0; k < n; k++)
        for (a = ptr[k] + 1; a < ptr[k + 1]; a++)
            for (b = a; b > ptr[k] && idx[b - 1] > idx[b]; b--) {
                int ti = idx[b];
                double tv = val[b];
                idx[b] = idx[b - 1]; val[b] = val[b - 1];
                idx[b - 1] = ti; val[b - 1] = tv;
            }
}

/* lu_factor's compressed factors against lu_compress of its dense result, and the three solves against
   the matrix: sparse random matrices (density ~ 0.2 and 1), diagonally dominant (no interchanges) and
   not (interchanges after the first step), orders 1..30. */
static void test_lu(void)
{
    enum { NMAX = 30, NN = NMAX * NMAX };
    static double A[NN], F[NN], b[NMAX], x[NMAX], B[NMAX * 3], X1[NMAX * 3];
    static double fd[3][NN], gd[3][NN];
    static int fi[6][NN], gi[5][NN];
    int sizes[6] = {1, 2, 3, 5, 9, 30}, is, dom, dens, bad = 0, swaps = 0, nfact = 0, n, i, j, c, k;
    double res = 0.0, rest = 0.0, colsdiff = 0.0;
    for (is = 0; is < 6; is++)
        for (dom = 0; dom < 2; dom++)
            for (dens = 0; dens < 2; dens++) {
                lu_store f, g;
                symode_lu v;
                n = sizes[is];
                for (j = 0; j < n; j++)
                    for (i = 0; i < n; i++) {
                        double a = (dens == 0 && urand() > 0.2) ? 0.0 : 2.0 * urand() - 1.0;
                        if (i == j) a = dom ? 1.0 + n + urand() : (urand() < 0.5 ? 0.0 : 0.1 * a);
                        A[i + j * n] = a;
                    }
                if (!dom) A[n - 1] = 3.0; /* row n-1 is the pivot of step 0 */
                memcpy(F, A, sizeof(double) * (size_t)n * n);
                f.piv = fi[0]; f.nz = fi[1]; f.lp = fi[2]; f.up = fi[3]; f.li = fi[4]; f.ui = fi[5];
                f.dinv = fd[0]; f.lv = fd[1]; f.uv = fd[2];
                if (lu_factor(n, F, &f)) continue; /* singular draw */
                nfact++;
                for (k = 1; k < n; k++) swaps += f.piv[k] != k;
                /* the collected factors are those of the dense result */
                g.piv = f.piv; g.nz = gi[0]; g.lp = gi[1]; g.up = gi[2]; g.li = gi[3]; g.ui = gi[4];
                g.dinv = gd[0]; g.lv = gd[1]; g.uv = gd[2];
                lu_compress(n, F, &g);
                /* lu_solve with L's rows in elimination order (before sorting) and ascending: the same
                   numbers */
                v.n = n; v.piv = f.piv; v.lp = f.lp; v.li = f.li; v.up = f.up; v.ui = f.ui;
                v.dinv = f.dinv; v.lv = f.lv; v.uv = f.uv;
                for (i = 0; i < n; i++) b[i] = x[i] = 2.0 * urand() - 1.0;
                lu_solve(&v, b);
                sort_columns(n, f.lp, f.li, f.lv);
                lu_solve(&v, x);
                for (i = 0; i < n; i++) bad += b[i] != x[i];
                for (k = 0; k <= n; k++) bad += f.lp[k] != g.lp[k] || f.up[k] != g.up[k];
                for (k = 0; k < n; k++) bad += f.dinv[k] != g.dinv[k];
                for (k = 0; k < g.lp[n]; k++) bad += f.li[k] != g.li[k] || f.lv[k] != g.lv[k];
                for (k = 0; k < g.up[n]; k++) bad += f.ui[k] != g.ui[k] || f.uv[k] != g.uv[k];
                v.n = n; v.piv = f.piv; v.lp = f.lp; v.li = f.li; v.up = f.up; v.ui = f.ui;
                v.dinv = f.dinv; v.lv = f.lv; v.uv = f.uv;
                /* A x = b and A^T x = b */
                for (i = 0; i < n; i++) b[i] = x[i] = 2.0 * urand() - 1.0;
                lu_solve(&v, x);
                for (i = 0; i < n; i++) {
                    double r = -b[i];
                    for (j = 0; j < n; j++) r += A[i + j * n] * x[j];
                    res = fmax(res, fabs(r));
                }
                for (i = 0; i < n; i++) x[i] = b[i];
                lu_solve_t(&v, x);
                for (j = 0; j < n; j++) {
                    double r = -b[j];
                    for (i = 0; i < n; i++) r += A[i + j * n] * x[i];
                    rest = fmax(rest, fabs(r));
                }
                /* three columns at once: the same numbers as one by one */
                for (i = 0; i < 3 * n; i++) B[i] = X1[i] = 2.0 * urand() - 1.0;
                for (c = 0; c < 3; c++) lu_solve(&v, X1 + c * n);
                lu_solve_cols(&v, B, 3);
                for (i = 0; i < 3 * n; i++) colsdiff = fmax(colsdiff, fabs(B[i] - X1[i]));
            }
    check(nfact >= 20 && bad == 0 && res < 1e-10 && rest < 1e-10 && colsdiff == 0.0 && swaps > 0,
          "lu_compressed", "%d factorisations, mismatches %d, interchanges after step 0: %d, max "
          "residual %.1e (transposed %.1e), columns at once vs one by one %.1e", nfact, bad, swaps, res,
          rest, colsdiff);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) g_quick = 1;
    test_jacobians();
    test_decay();
    test_lin3();
    test_pwc();
    test_order();
    test_robertson();
    test_vdp();
    test_errors();
    test_stiff_extra();
    test_workspace_and_hint();
    test_chemostat();
    test_lu();
    return check_summary();
}
