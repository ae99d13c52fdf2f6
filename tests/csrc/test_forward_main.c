/*
 * Test driver for the seeded forward sensitivities with sparse Jacobians (symode_tape_forward.c,
 * symode_forward.h) on a small reaction network with hand-written sparse Jx, Jp and second-order
 * d(Jx v)/dx, d(Jx v)/dp: seeded (sparse, and the dense fallbacks with vjp2 or jvp2) against the dense
 * reference (symode_tape_forward_dense) times the seed, and against central differences of the replayed
 * map; DOPRI5, RODAS4 and automatic switching, autonomous and not, piecewise-constant inputs; argument
 * errors. Prints "OK <name> | <info>" / "FAIL <name> | <info>" and "SUMMARY <n_ok> <n_fail>".
 * Usage: test_forward_main [--quick]
 */
#include "symode_forward.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_check.h"


/* ---------------- the model: 4 states, 5 parameters, 1 input ----------------
   f0 = -p0 x0 + p4 u0 + ct sin(t)       f1 = p0 x0 - p1 x1 x2
   f2 = -p1 x1 x2 + p2 r                 f3 = p1 x1 x2 - p2 r - p3 x3^2,   r = x3 / (1 + x3)          */
enum { N = 4, NP = 5, NU = 1 };
typedef struct {
    double ct; /* explicit time dependence (0: autonomous) */
} model_ctx;

static int rhs(void *ctx, double t, const double *x, const double *p, const double *u, double *f)
{
    const model_ctx *c = (const model_ctx *)ctx;
    double r = x[3] / (1.0 + x[3]), b = p[1] * x[1] * x[2];
    f[0] = -p[0] * x[0] + p[4] * u[0] + c->ct * sin(t);
    f[1] = p[0] * x[0] - b;
    f[2] = -b + p[2] * r;
    f[3] = b - p[2] * r - p[3] * x[3] * x[3];
    return 0;
}

/* Jx: columns 0..3 hold rows {0,1} {1,2,3} {1,2,3} {2,3};  Jp: {0,1} {1,2,3} {2,3} {3} {0} */
static const int JX_PAT[] = {N, N, 0, 2, 5, 8, 10, 0, 1, 1, 2, 3, 1, 2, 3, 2, 3};
static const int JP_PAT[] = {N, NP, 0, 2, 5, 7, 8, 9, 0, 1, 1, 2, 3, 2, 3, 3, 0};
/* d(Jx v)/dx: columns {} {1,2,3} {1,2,3} {2,3};  d(Jx v)/dp: {0,1} {1,2,3} {2,3} {3} {} */
static const int HX_PAT[] = {N, N, 0, 0, 3, 6, 8, 1, 2, 3, 1, 2, 3, 2, 3};
static const int HP_PAT[] = {N, NP, 0, 2, 5, 7, 8, 8, 0, 1, 1, 2, 3, 2, 3, 3};

static int jac_sparse(void *ctx, double t, const double *x, const double *p, const double *u, double *jx,
                      double *jp)
{
    double d = 1.0 / ((1.0 + x[3]) * (1.0 + x[3])), r = x[3] / (1.0 + x[3]);
    (void)ctx; (void)t; (void)u;
    jx[0] = -p[0]; jx[1] = p[0];                                          /* d/dx0 */
    jx[2] = -p[1] * x[2]; jx[3] = -p[1] * x[2]; jx[4] = p[1] * x[2];       /* d/dx1 */
    jx[5] = -p[1] * x[1]; jx[6] = -p[1] * x[1]; jx[7] = p[1] * x[1];       /* d/dx2 */
    jx[8] = p[2] * d; jx[9] = -p[2] * d - 2.0 * p[3] * x[3];               /* d/dx3 */
    jp[0] = -x[0]; jp[1] = x[0];                                           /* d/dp0 */
    jp[2] = -x[1] * x[2]; jp[3] = -x[1] * x[2]; jp[4] = x[1] * x[2];       /* d/dp1 */
    jp[5] = r; jp[6] = -r;                                                 /* d/dp2 */
    jp[7] = -x[3] * x[3];                                                  /* d/dp3 */
    jp[8] = u[0];                                                          /* d/dp4 */
    return 0;
}

static int hes_sparse(void *ctx, double t, const double *x, const double *p, const double *u, const double *v,
                      double *hx, double *hp)
{
    double d = 1.0 / ((1.0 + x[3]) * (1.0 + x[3])), d3 = d / (1.0 + x[3]), s = x[2] * v[1] + x[1] * v[2];
    (void)ctx; (void)t; (void)u;
    /* (Jx v)_1 = p0 v0 - p1 s,  (Jx v)_2 = -p1 s + p2 d v3,  (Jx v)_3 = p1 s - p2 d v3 - 2 p3 x3 v3 */
    hx[0] = -p[1] * v[2]; hx[1] = -p[1] * v[2]; hx[2] = p[1] * v[2];       /* d/dx1 */
    hx[3] = -p[1] * v[1]; hx[4] = -p[1] * v[1]; hx[5] = p[1] * v[1];       /* d/dx2 */
    hx[6] = -2.0 * p[2] * d3 * v[3];                                       /* d/dx3 */
    hx[7] = 2.0 * p[2] * d3 * v[3] - 2.0 * p[3] * v[3];
    hp[0] = -v[0]; hp[1] = v[0];                                           /* d/dp0 */
    hp[2] = -s; hp[3] = -s; hp[4] = s;                                     /* d/dp1 */
    hp[5] = d * v[3]; hp[6] = -d * v[3];                                   /* d/dp2 */
    hp[7] = -2.0 * x[3] * v[3];                                            /* d/dp3 */
    return 0;
}

static const int *pattern(int which)
{
    return which == SYMODE_SPARSE_JX ? JX_PAT : which == SYMODE_SPARSE_JP ? JP_PAT
         : which == SYMODE_SPARSE_HX ? HX_PAT : which == SYMODE_SPARSE_HP ? HP_PAT : NULL;
}

static int sparsity(int which, int *out)
{
    const int *a = pattern(which);
    int len;
    if (!a) return -1;
    len = 3 + a[1] + a[2 + a[1]];
    if (out) memcpy(out, a, (size_t)len * sizeof(int));
    return len;
}

/* a pattern of the wrong size (the sweep must refuse it) */
static int sparsity_bad(int which, int *out)
{
    int len = sparsity(which, out);
    if (out && which == SYMODE_SPARSE_JP) out[1] = NP + 1;
    return len;
}

/* dense column-major matrix of a sparse one (pattern a, values v) */
static void densify(const int *a, const double *v, double *M)
{
    int j, q, nrow = a[0], ncol = a[1];
    const int *colind = a + 2, *row = a + 3 + ncol;
    memset(M, 0, (size_t)nrow * ncol * sizeof(double));
    for (j = 0; j < ncol; j++)
        for (q = colind[j]; q < colind[j + 1]; q++) M[row[q] + (size_t)j * nrow] = v[q];
}

/* the dense callbacks, from the sparse ones */
static int jac_dense(void *ctx, double t, const double *x, const double *p, const double *u, double *J)
{
    double jx[16], jp[16];
    jac_sparse(ctx, t, x, p, u, jx, jp);
    densify(JX_PAT, jx, J);
    return 0;
}
static int jacp_dense(void *ctx, double t, const double *x, const double *p, const double *u, double *J)
{
    double jx[16], jp[16];
    jac_sparse(ctx, t, x, p, u, jx, jp);
    densify(JP_PAT, jp, J);
    return 0;
}
static int vjp(void *ctx, double t, const double *x, const double *p, const double *u, const double *w,
               double *ox, double *op)
{
    double jx[16], jp[16], Jx[N * N], Jp[N * NP];
    int i, j;
    jac_sparse(ctx, t, x, p, u, jx, jp);
    densify(JX_PAT, jx, Jx);
    densify(JP_PAT, jp, Jp);
    for (j = 0; j < N; j++)
        for (ox[j] = 0.0, i = 0; i < N; i++) ox[j] += Jx[i + j * N] * w[i];
    for (j = 0; j < NP; j++)
        for (op[j] = 0.0, i = 0; i < N; i++) op[j] += Jp[i + j * N] * w[i];
    return 0;
}
static void hes_dense(void *ctx, double t, const double *x, const double *p, const double *u, const double *v,
                      double *Hx, double *Hp)
{
    double hx[16], hp[16];
    hes_sparse(ctx, t, x, p, u, v, hx, hp);
    densify(HX_PAT, hx, Hx);
    densify(HP_PAT, hp, Hp);
}
static int vjp2(void *ctx, double t, const double *x, const double *p, const double *u, const double *v,
                const double *w, double *ox, double *op)
{
    double Hx[N * N], Hp[N * NP];
    int i, j;
    hes_dense(ctx, t, x, p, u, v, Hx, Hp);
    for (j = 0; j < N; j++)
        for (ox[j] = 0.0, i = 0; i < N; i++) ox[j] += Hx[i + j * N] * w[i];
    for (j = 0; j < NP; j++)
        for (op[j] = 0.0, i = 0; i < N; i++) op[j] += Hp[i + j * N] * w[i];
    return 0;
}
static int jvp2(void *ctx, double t, const double *x, const double *p, const double *u, const double *v,
                const double *dx, const double *dp, double *out)
{
    double Hx[N * N], Hp[N * NP];
    int i, j;
    hes_dense(ctx, t, x, p, u, v, Hx, Hp);
    for (i = 0; i < N; i++) {
        out[i] = 0.0;
        for (j = 0; j < N; j++) out[i] += Hx[i + j * N] * dx[j];
        if (dp)
            for (j = 0; j < NP; j++) out[i] += Hp[i + j * N] * dp[j];
    }
    return 0;
}

static const symode_sparse_derivs SPARSE = {jac_sparse, hes_sparse, sparsity};
static const symode_sparse_derivs SPARSE_BAD = {jac_sparse, hes_sparse, sparsity_bad};

/* ---------------- checks ---------------- */
enum { NI = 12, NT = NI + 1, NS = N + NP, KMAX = 4 };

static double rel(const double *a, const double *b, size_t n)
{
    double e = 0.0, m = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return m > 0.0 ? e / m : e;
}

/* three seeds ((N + NP) x k row-major): dense, one direction, PEtab-like (x part dense, p part selecting) */
static int make_seed(int which, double *D)
{
    int i, c, k = which == 1 ? 1 : which == 0 ? KMAX : 3;
    for (i = 0; i < NS; i++)
        for (c = 0; c < k; c++) D[i * k + c] = sin(1.3 * i + 2.1 * c + 0.7 * which);
    if (which == 2) {
        for (i = N; i < NS; i++)
            for (c = 0; c < k; c++) D[i * k + c] = 0.0;
        D[(N + 0) * k + 0] = 1.0;
        D[(N + 2) * k + 1] = 1.0;
        D[(N + 3) * k + 2] = 1.0;
        D[(N + 1) * k + 2] = 0.5;
    }
    return k;
}

static void run_case(int method, double ct, double p2, int quick)
{
    model_ctx mc = {0.0};
    symode_model m = {N, NP, NU, rhs, jac_dense, NULL, 0};
    symode_derivs dsp = {jacp_dense, vjp, vjp2, jvp2, NULL, &SPARSE};
    symode_derivs dv2 = {jacp_dense, vjp, vjp2, jvp2, NULL, NULL};
    symode_derivs dj2 = {jacp_dense, vjp, NULL, jvp2, NULL, NULL};
    symode_options o;
    symode_tape *tape = symode_tape_new();
    double times[NT], u[NI], x0[N] = {1.0, 0.2, 0.8, 0.1}, p[NP] = {0.7, 3.0, 40.0, 0.5, 0.3};
    double xout[NT * N], S[NT * N * NS], Sd[NT * N * NS], G[NT * N * KMAX], G2[NT * N * KMAX],
        ref[NT * N * KMAX], xp[NT * N], xm[NT * N], x0s[N], ps[NP], D[NS * KMAX];
    double e_full = 0.0, e_seed = 0.0, e_v2 = 0.0, e_j2 = 0.0, e_fd = 0.0;
    int i, j, c, s, t, k, rc = 0;
    char name[64];
    mc.ct = ct;
    p[2] = p2;
    m.ctx = &mc;
    m.nonautonomous = ct != 0.0;
    for (i = 0; i < NT; i++) times[i] = 0.5 * i;
    for (i = 0; i < NI; i++) u[i] = 0.2 + 0.3 * ((i * 5) % 7) / 7.0; /* piecewise-constant input */
    symode_default_options(&o);
    o.rtol = 1e-9;
    o.atol = 1e-12;
    o.method = method;
    rc |= symode_integrate_record(&m, &o, NT, times, x0, p, u, xout, NULL, tape);
    rc |= symode_tape_forward(tape, &m, &dsp, p, u, S);
    rc |= symode_tape_forward_dense(tape, &m, &dsp, p, u, Sd);
    e_full = rel(S, Sd, (size_t)NT * N * NS);
    for (s = 0; s < 3 && !rc; s++) {
        k = make_seed(s, D);
        /* reference: the dense S (column-major blocks) times D */
        for (t = 0; t < NT; t++)
            for (i = 0; i < N; i++)
                for (c = 0; c < k; c++) {
                    double a = 0.0;
                    for (j = 0; j < NS; j++) a += Sd[(size_t)t * N * NS + i + (size_t)j * N] * D[j * k + c];
                    ref[(size_t)t * N * k + (size_t)i * k + c] = a;
                }
        rc |= symode_tape_forward_seeded(tape, &m, &dsp, p, u, k, D, G);
        e_seed = fmax(e_seed, rel(G, ref, (size_t)NT * N * k));
        rc |= symode_tape_forward_seeded(tape, &m, &dv2, p, u, k, D, G2);
        e_v2 = fmax(e_v2, rel(G2, ref, (size_t)NT * N * k));
        rc |= symode_tape_forward_seeded(tape, &m, &dj2, p, u, k, D, G2);
        e_j2 = fmax(e_j2, rel(G2, ref, (size_t)NT * N * k));
        /* central differences of the replayed map along each direction */
        for (c = 0; c < k && (!quick || s == 2); c++) {
            const double h = 1e-5;
            for (i = 0; i < N; i++) x0s[i] = x0[i] + h * D[i * k + c];
            for (i = 0; i < NP; i++) ps[i] = p[i] + h * D[(N + i) * k + c];
            rc |= symode_tape_replay(tape, &m, x0s, ps, u, xp);
            for (i = 0; i < N; i++) x0s[i] = x0[i] - h * D[i * k + c];
            for (i = 0; i < NP; i++) ps[i] = p[i] - h * D[(N + i) * k + c];
            rc |= symode_tape_replay(tape, &m, x0s, ps, u, xm);
            for (t = 0; t < NT; t++)
                for (i = 0; i < N; i++) {
                    double fd = (xp[t * N + i] - xm[t * N + i]) / (2.0 * h);
                    e_fd = fmax(e_fd, fabs(fd - G[(size_t)t * N * k + (size_t)i * k + c]) /
                                          (1.0 + fabs(G[(size_t)t * N * k + (size_t)i * k + c])));
                }
        }
    }
    snprintf(name, sizeof(name), "seeded_%s%s", method == SYMODE_AUTO ? "auto"
             : method == SYMODE_EXPLICIT ? "explicit" : "stiff", ct != 0.0 ? "_nonaut" : "");
    check(rc == 0 && e_full < 1e-12 && e_seed < 1e-12 && e_v2 < 1e-12 && e_j2 < 1e-12 && e_fd < 1e-6 &&
              (method != SYMODE_STIFF || symode_tape_nstiff(tape) == symode_tape_nsteps(tape)) &&
              (method != SYMODE_AUTO || (symode_tape_nstiff(tape) > 0 && symode_tape_nstiff(tape) < symode_tape_nsteps(tape))),
          name, "rc %d, %ld steps (%ld RODAS4): S sparse vs dense %.1e, seeded vs dense S D %.1e, dense vjp2 %.1e, "
          "jvp2 %.1e, vs central differences %.1e", rc, symode_tape_nsteps(tape), symode_tape_nstiff(tape), e_full,
          e_seed, e_v2, e_j2, e_fd);
    symode_tape_free(tape);
}

static void test_errors(void)
{
    model_ctx mc = {0.0};
    symode_model m = {N, NP, NU, rhs, jac_dense, NULL, 0};
    symode_derivs dsp = {jacp_dense, vjp, vjp2, jvp2, NULL, &SPARSE};
    symode_derivs dbad = {jacp_dense, vjp, vjp2, jvp2, NULL, &SPARSE_BAD};
    symode_sparse_derivs nohes = {jac_sparse, NULL, sparsity};
    symode_derivs dnohes = {jacp_dense, vjp, vjp2, jvp2, NULL, &nohes};
    symode_options o;
    symode_tape *tape = symode_tape_new();
    double times[3] = {0.0, 0.5, 1.0}, u[2] = {0.3, 0.4}, x0[N] = {1.0, 0.2, 0.8, 0.1},
           p[NP] = {0.7, 3.0, 40.0, 0.5, 0.3}, xout[3 * N], D[NS] = {1.0}, G[3 * N];
    int r0, r1, r2, r3, r4;
    m.ctx = &mc;
    symode_default_options(&o);
    o.method = SYMODE_STIFF;
    r0 = symode_integrate_record(&m, &o, 3, times, x0, p, u, xout, NULL, tape);
    r1 = symode_tape_forward_seeded(tape, &m, &dsp, p, u, 0, D, G);      /* k = 0 */
    r2 = symode_tape_forward_seeded(tape, &m, &dbad, p, u, 1, D, G);     /* a pattern of the wrong size */
    r3 = symode_tape_forward_seeded(tape, &m, &dnohes, p, u, 1, D, G);   /* RODAS4 steps need hes */
    r4 = symode_tape_forward_seeded(tape, &m, &dsp, p, u, 1, NULL, G);
    check(r0 == 0 && r1 == SYMODE_ERR_ARGS && r2 == SYMODE_ERR_ARGS && r3 == SYMODE_ERR_ARGS &&
              r4 == SYMODE_ERR_ARGS, "seeded_errors_args", "%d %d %d %d %d", r0, r1, r2, r3, r4);
    symode_tape_free(tape);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    run_case(SYMODE_EXPLICIT, 0.0, 40.0, quick);
    run_case(SYMODE_STIFF, 0.0, 40.0, quick);
    run_case(SYMODE_AUTO, 0.0, 2000.0, quick); /* stiff enough to switch to RODAS4 and back */
    run_case(SYMODE_STIFF, 0.5, 40.0, quick);
    run_case(SYMODE_EXPLICIT, 0.5, 40.0, quick);
    test_errors();
    return check_summary();
}
