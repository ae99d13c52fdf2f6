/*
 * symode_gradient.c -- see symode_gradient.h for the mathematics.
 * All integrations go through symode_integrate_ws (symode_integrator.c): the time loop stays in C.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "symode_gradient.h"

static const double *interval_u(const symode_gmodel *g, const double *u, int nt, int i)
{
    int k = i < nt - 1 ? i : nt - 2;
    if (k < 0) k = 0;
    return g->m.nu > 0 ? u + (size_t)k * (size_t)g->m.nu : u;
}

static double dmaxd(double a, double b) { return a > b ? a : b; }

/* ------------------------------------------------------------------------------------------ */
/* residuals and loss                                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    double *y, *Hx, *Hp;
} obs_buf;

static int obs_buf_init(obs_buf *b, int nx, int np, int ny)
{
    size_t n = (size_t)ny + (size_t)ny * (size_t)nx + (size_t)ny * (size_t)(np > 0 ? np : 1);
    b->y = (double *)malloc(n * sizeof(double));
    if (!b->y) return SYMODE_ERR_NOMEM;
    b->Hx = b->y + ny;
    b->Hp = b->Hx + (size_t)ny * nx;
    return 0;
}

/* Per-sample residual contributions. If S is given (nx x ns column-major), the residual Jacobian rows
   (Hx S + [0 | Hp]) / sigma are written to rjac (row-major, ns columns) and accumulated into grad. */
static int residual_row(const symode_gmodel *g, obs_buf *b, double t, const double *x, const double *p,
                        const double *u, const double *d, const double *sig, double *r, double *loss,
                        double *lam, double *gp, const double *S, double *rjac, double *grad)
{
    int nx = g->m.nx, np = g->m.np, ny = g->ny, ns = nx + np, k, j, l, any = 0, rc;
    for (k = 0; k < ny; k++) {
        if (isfinite(d[k])) {
            any = 1;
            if (!(sig[k] > 0.0) || !isfinite(sig[k])) return SYMODE_ERR_ARGS;
        }
        if (r) r[k] = 0.0;
    }
    if (rjac) memset(rjac, 0, (size_t)ny * ns * sizeof(double));
    if (!any) return 0;
    if ((rc = g->obs(g->m.ctx, t, x, p, u, b->y))) return SYMODE_ERR_RHS;
    if (lam || gp || S) {
        if ((rc = g->obs_jac_x(g->m.ctx, t, x, p, u, b->Hx))) return SYMODE_ERR_RHS;
        if (np > 0 && (rc = g->obs_jac_p(g->m.ctx, t, x, p, u, b->Hp))) return SYMODE_ERR_RHS;
    }
    for (k = 0; k < ny; k++) {
        double rk, w;
        if (!isfinite(d[k])) continue;
        rk = (b->y[k] - d[k]) / sig[k];
        if (!isfinite(rk)) return SYMODE_ERR_NONFINITE;
        if (r) r[k] = rk;
        *loss += 0.5 * rk * rk;
        w = rk / sig[k];
        if (lam)
            for (l = 0; l < nx; l++) lam[l] += w * b->Hx[k + (size_t)l * ny];
        if (gp)
            for (j = 0; j < np; j++) gp[j] += w * b->Hp[k + (size_t)j * ny];
        if (S) {
            double *row = rjac ? rjac + (size_t)k * ns : NULL;
            for (j = 0; j < ns; j++) {
                const double *s = S + (size_t)j * nx;
                double v = j >= nx ? b->Hp[k + (size_t)(j - nx) * ny] : 0.0;
                for (l = 0; l < nx; l++) v += b->Hx[k + (size_t)l * ny] * s[l];
                v /= sig[k];
                if (row) row[j] = v;
                if (grad) grad[j] += rk * v;
            }
        }
    }
    return 0;
}

int symode_residuals(const symode_gmodel *g, int nt, const double *times, const double *X, const double *p,
                     const double *u, const double *data, const double *sigma, double *r, double *loss,
                     double *lam, double *gp)
{
    obs_buf b;
    int i, rc = 0, nx = g->m.nx, ny = g->ny;
    double L = 0.0;
    if (nt < 1 || !loss) return SYMODE_ERR_ARGS;
    if ((rc = obs_buf_init(&b, nx, g->m.np, ny))) return rc;
    if (lam) memset(lam, 0, (size_t)nt * nx * sizeof(double));
    for (i = 0; i < nt && !rc; i++)
        rc = residual_row(g, &b, times[i], X + (size_t)i * nx, p, interval_u(g, u, nt, i),
                          data + (size_t)i * ny, sigma + (size_t)i * ny, r ? r + (size_t)i * ny : NULL, &L,
                          lam ? lam + (size_t)i * nx : NULL, gp, NULL, NULL, NULL);
    free(b.y);
    *loss = L;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* forward sensitivities: z = [x, S], S' = Jx S + [0 | Jp]                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const symode_gmodel *g;
    double *Jx, *Jp;
} fs_ctx;

static int fs_rhs(void *vctx, double t, const double *z, const double *p, const double *u, double *dz)
{
    fs_ctx *c = (fs_ctx *)vctx;
    const symode_gmodel *g = c->g;
    int nx = g->m.nx, np = g->m.np, ns = nx + np, j, l, k;
    const double *S = z + nx;
    double *dS = dz + nx;
    if (g->m.rhs(g->m.ctx, t, z, p, u, dz)) return 1;
    if (g->m.jac(g->m.ctx, t, z, p, u, c->Jx)) return 1;
    if (np > 0 && g->jac_p(g->m.ctx, t, z, p, u, c->Jp)) return 1;
    for (j = 0; j < ns; j++) {
        double *col = dS + (size_t)j * nx;
        const double *s = S + (size_t)j * nx;
        if (j >= nx) memcpy(col, c->Jp + (size_t)(j - nx) * nx, (size_t)nx * sizeof(double));
        else memset(col, 0, (size_t)nx * sizeof(double));
        for (l = 0; l < nx; l++) {
            const double sl = s[l];
            const double *Jcol = c->Jx + (size_t)l * nx;
            if (sl == 0.0) continue;
            for (k = 0; k < nx; k++) col[k] += Jcol[k] * sl;
        }
    }
    return 0;
}

/* Integrate the augmented system; Z receives nt rows of nz = nx + nx*(nx+np). */
static int fs_integrate(const symode_gmodel *g, const symode_options *opt, int nt, const double *times,
                        const double *x0, const double *p, const double *u, double *Z, symode_stats *stats)
{
    int nx = g->m.nx, np = g->m.np, ns = nx + np, j, rc;
    size_t nz = (size_t)nx + (size_t)nx * ns;
    fs_ctx c;
    symode_model am;
    symode_options o;
    double *z0;
    if (!g->m.jac || (np > 0 && !g->jac_p)) return SYMODE_ERR_ARGS;
    z0 = (double *)calloc(nz + (size_t)nx * nx + (size_t)nx * (np > 0 ? np : 1), sizeof(double));
    if (!z0) return SYMODE_ERR_NOMEM;
    c.g = g;
    c.Jx = z0 + nz;
    c.Jp = c.Jx + (size_t)nx * nx;
    memcpy(z0, x0, (size_t)nx * sizeof(double));
    for (j = 0; j < nx; j++) z0[nx + (size_t)j * nx + j] = 1.0;
    am = g->m;
    am.nx = (int)nz;
    am.rhs = fs_rhs;
    am.jac = NULL; /* finite-difference Jacobian of the augmented system (stiff method only) */
    am.ctx = &c;
    if (opt) o = *opt;
    else symode_default_options(&o);
    if (nz > 1200 && o.method != SYMODE_EXPLICIT) o.method = SYMODE_EXPLICIT; /* dense LU of nz^2 too big */
    rc = symode_integrate(&am, &o, nt, times, z0, p, u, Z, stats);
    free(z0);
    return rc;
}

int symode_forward_sens(const symode_gmodel *g, const symode_options *opt, int nt, const double *times,
                        const double *x0, const double *p, const double *u, double *X, double *S,
                        symode_stats *stats)
{
    int nx = g->m.nx, ns = nx + g->m.np, i, rc;
    size_t nz = (size_t)nx + (size_t)nx * ns;
    double *Z = (double *)malloc((size_t)nt * nz * sizeof(double));
    if (!Z) return SYMODE_ERR_NOMEM;
    rc = fs_integrate(g, opt, nt, times, x0, p, u, Z, stats);
    for (i = 0; i < nt; i++) {
        if (X) memcpy(X + (size_t)i * nx, Z + (size_t)i * nz, (size_t)nx * sizeof(double));
        if (S) memcpy(S + (size_t)i * nx * ns, Z + (size_t)i * nz + nx, (size_t)nx * ns * sizeof(double));
    }
    free(Z);
    return rc;
}

int symode_loss_forward(const symode_gmodel *g, const symode_options *opt, int nt, const double *times,
                        const double *x0, const double *p, const double *u, const double *data,
                        const double *sigma, double *loss, double *grad, double *rjac, double *r,
                        symode_stats *stats)
{
    int nx = g->m.nx, ny = g->ny, ns = nx + g->m.np, i, rc;
    size_t nz = (size_t)nx + (size_t)nx * ns;
    double L = 0.0, *Z;
    obs_buf b;
    if (!loss || nt < 1) return SYMODE_ERR_ARGS;
    Z = (double *)malloc((size_t)nt * nz * sizeof(double));
    if (!Z) return SYMODE_ERR_NOMEM;
    if ((rc = obs_buf_init(&b, nx, g->m.np, ny))) {
        free(Z);
        return rc;
    }
    rc = fs_integrate(g, opt, nt, times, x0, p, u, Z, stats);
    if (grad) memset(grad, 0, (size_t)ns * sizeof(double));
    for (i = 0; i < nt && !rc; i++) {
        const double *zi = Z + (size_t)i * nz;
        rc = residual_row(g, &b, times[i], zi, p, interval_u(g, u, nt, i), data + (size_t)i * ny,
                          sigma + (size_t)i * ny, r ? r + (size_t)i * ny : NULL, &L, NULL, NULL, zi + nx,
                          rjac ? rjac + (size_t)i * ny * ns : NULL, grad);
    }
    *loss = L;
    free(b.y);
    free(Z);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* continuous adjoint (Algorithm 1), in reversed time s = t_hi - t                              */
/* ------------------------------------------------------------------------------------------ */

/* States at the start of every accepted forward step (the interpolation nodes). */
typedef struct {
    int n, cap, nx;
    double *t, *x;
    int *interval, *method;
} nodes_t;

static int nodes_push(void *vs, const symode_step_info *info, const double *x)
{
    nodes_t *s = (nodes_t *)vs;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *t = (double *)realloc(s->t, (size_t)cap * sizeof(double));
        double *xx;
        int *iv, *me;
        if (!t) return 1;
        s->t = t;
        xx = (double *)realloc(s->x, (size_t)cap * s->nx * sizeof(double));
        if (!xx) return 1;
        s->x = xx;
        iv = (int *)realloc(s->interval, (size_t)cap * sizeof(int));
        if (!iv) return 1;
        s->interval = iv;
        me = (int *)realloc(s->method, (size_t)cap * sizeof(int));
        if (!me) return 1;
        s->method = me;
        s->cap = cap;
    }
    s->t[s->n] = info->t;
    memcpy(s->x + (size_t)s->n * s->nx, x, (size_t)s->nx * sizeof(double));
    s->interval[s->n] = info->interval;
    s->method[s->n] = info->method;
    s->n++;
    return 0;
}

static void nodes_free(nodes_t *s)
{
    free(s->t);
    free(s->x);
    free(s->interval);
    free(s->method);
}

typedef struct {
    const symode_gmodel *g;
    int variant;
    double t_hi;
    int nn;                              /* nodes of the current interval */
    const double *tn, *xn, *fn, *an;     /* t, x, x' = f, x'' = df/dt along the solution */
    double *Jx, *Jp, *xbuf;
} adj_ctx;

/* Quintic Hermite interpolation of x(t) between the forward steps (error O(h^6) per step). */
static void hermite(const adj_ctx *c, double t, double *x)
{
    int nx = c->g->m.nx, lo = 0, hi = c->nn - 1, k;
    double h, s, s2, s3, s4, s5, b0, b1, b2, b3, b4, b5;
    const double *x0, *x1, *f0, *f1, *a0, *a1;
    while (hi - lo > 1) { /* tn[lo] <= t <= tn[hi] */
        int mid = (lo + hi) / 2;
        if (c->tn[mid] <= t) lo = mid;
        else hi = mid;
    }
    h = c->tn[lo + 1] - c->tn[lo];
    s = (t - c->tn[lo]) / h;
    s2 = s * s; s3 = s2 * s; s4 = s3 * s; s5 = s4 * s;
    b0 = 1.0 - 10.0 * s3 + 15.0 * s4 - 6.0 * s5;
    b1 = (s - 6.0 * s3 + 8.0 * s4 - 3.0 * s5) * h;
    b2 = (0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5) * h * h;
    b3 = 10.0 * s3 - 15.0 * s4 + 6.0 * s5;
    b4 = (-4.0 * s3 + 7.0 * s4 - 3.0 * s5) * h;
    b5 = (0.5 * s3 - s4 + 0.5 * s5) * h * h;
    x0 = c->xn + (size_t)lo * nx; x1 = x0 + nx;
    f0 = c->fn + (size_t)lo * nx; f1 = f0 + nx;
    a0 = c->an + (size_t)lo * nx; a1 = a0 + nx;
    for (k = 0; k < nx; k++)
        x[k] = b0 * x0[k] + b1 * f0[k] + b2 * a0[k] + b3 * x1[k] + b4 * f1[k] + b5 * a1[k];
}

/* x'' = d f(t, x(t))/dt at a node, by a central difference along the flow. */
static int second_derivative(const symode_gmodel *g, double t, const double *x, const double *f,
                             const double *p, const double *u, double *tmp, double *fp, double *out)
{
    int nx = g->m.nx, k;
    double nrm = 0.0, xn = 0.0, d;
    for (k = 0; k < nx; k++) {
        nrm = dmaxd(nrm, fabs(f[k]));
        xn = dmaxd(xn, fabs(x[k]));
    }
    d = 1e-5 * (xn + 1e-8) / (nrm + 1e-300);
    if (d > 1e-5 * (1.0 + fabs(t))) d = 1e-5 * (1.0 + fabs(t));
    for (k = 0; k < nx; k++) tmp[k] = x[k] + d * f[k];
    if (g->m.rhs(g->m.ctx, t + d, tmp, p, u, fp)) return 1;
    for (k = 0; k < nx; k++) tmp[k] = x[k] - d * f[k];
    if (g->m.rhs(g->m.ctx, t - d, tmp, p, u, out)) return 1;
    for (k = 0; k < nx; k++) out[k] = (fp[k] - out[k]) / (2.0 * d);
    return 0;
}

/* da/ds = Jx^T a, dg/ds = Jp^T a (and dx/ds = -f for the backsolve). */
static int adj_rhs(void *vctx, double s, const double *z, const double *p, const double *u, double *dz)
{
    adj_ctx *c = (adj_ctx *)vctx;
    const symode_gmodel *g = c->g;
    int nx = g->m.nx, np = g->m.np, k, l;
    double t = c->t_hi - s;
    const double *x, *a;
    double *da, *dg;
    if (c->variant == SYMODE_ADJ_INTERPOLATE) {
        hermite(c, t, c->xbuf);
        x = c->xbuf;
        a = z;
        da = dz;
    } else {
        x = z;
        a = z + nx;
        if (g->m.rhs(g->m.ctx, t, x, p, u, dz)) return 1;
        for (k = 0; k < nx; k++) dz[k] = -dz[k];
        da = dz + nx;
    }
    dg = da + nx;
    if (g->d.vjp) /* one vector-Jacobian product: a^T df/dx, a^T df/dp (no dense df/dp per step) */
        return g->d.vjp(g->m.ctx, t, x, p, u, a, da, dg) != 0;
    if (g->m.jac(g->m.ctx, t, x, p, u, c->Jx)) return 1;
    if (np > 0 && g->jac_p(g->m.ctx, t, x, p, u, c->Jp)) return 1;
    for (l = 0; l < nx; l++) {
        const double *col = c->Jx + (size_t)l * nx;
        double v = 0.0;
        for (k = 0; k < nx; k++) v += col[k] * a[k];
        da[l] = v;
    }
    for (l = 0; l < np; l++) {
        const double *col = c->Jp + (size_t)l * nx;
        double v = 0.0;
        for (k = 0; k < nx; k++) v += col[k] * a[k];
        dg[l] = v;
    }
    return 0;
}

/* Jacobian of the interpolating adjoint system [a, g]: [[Jx^T, 0], [Jp^T, 0]] (exact: x(t) is given). */
static int adj_jac(void *vctx, double s, const double *z, const double *p, const double *u, double *J)
{
    adj_ctx *c = (adj_ctx *)vctx;
    const symode_gmodel *g = c->g;
    int nx = g->m.nx, np = g->m.np, n = nx + np, k, l;
    (void)z;
    hermite(c, c->t_hi - s, c->xbuf);
    if (g->m.jac(g->m.ctx, c->t_hi - s, c->xbuf, p, u, c->Jx)) return 1;
    if (np > 0 && g->jac_p(g->m.ctx, c->t_hi - s, c->xbuf, p, u, c->Jp)) return 1;
    memset(J, 0, (size_t)n * n * sizeof(double));
    for (l = 0; l < nx; l++)
        for (k = 0; k < nx; k++) J[l + (size_t)k * n] = c->Jx[k + (size_t)l * nx];
    for (l = 0; l < np; l++)
        for (k = 0; k < nx; k++) J[nx + l + (size_t)k * n] = c->Jp[k + (size_t)l * nx];
    return 0;
}

int symode_loss_adjoint(const symode_gmodel *g, const symode_options *opt, int variant, int nt,
                        const double *times, const double *x0, const double *p, const double *u,
                        const double *data, const double *sigma, double *loss, double *grad,
                        symode_stats *stats)
{
    int nx = g->m.nx, np = g->m.np, nu = g->m.nu, i, k, rc = 0, maxn = 0, first;
    int nz = (variant == SYMODE_ADJ_BACKSOLVE ? 2 * nx : nx) + np;
    double *X = NULL, *lam = NULL, *gp = NULL, *z = NULL, *zout = NULL, *tn = NULL, *xn = NULL;
    double *fn = NULL, *an = NULL, *tmp1 = NULL, *tmp2 = NULL, *work = NULL, *Jx = NULL, *Jp = NULL;
    double *xbuf = NULL, scale = 0.0;
    int *start = NULL;
    void *ws = NULL, *ws_x = NULL;
    nodes_t nodes;
    adj_ctx c;
    symode_model am;
    symode_options o, oa;
    symode_stats st;

    memset(&nodes, 0, sizeof nodes);
    nodes.nx = nx;
    if (!loss || !grad || nt < 1 || !g->m.jac || (np > 0 && !g->jac_p) ||
        (variant != SYMODE_ADJ_INTERPOLATE && variant != SYMODE_ADJ_BACKSOLVE))
        return SYMODE_ERR_ARGS;
    if (opt) o = *opt;
    else symode_default_options(&o);

    /* forward pass: checkpoints at the sample times, nodes at every accepted step */
    X = (double *)malloc((size_t)nt * nx * 2 * sizeof(double) + sizeof(double));
    start = (int *)malloc((size_t)(nt + 1) * sizeof(int));
    ws = malloc(symode_workspace_size(nz));
    ws_x = malloc(symode_workspace_size(nx));
    if (!X || !start || !ws || !ws_x) {
        rc = SYMODE_ERR_NOMEM;
        goto done;
    }
    lam = X + (size_t)nt * nx;
    rc = symode_integrate_ws_hook(&g->m, &o, nt, times, x0, p, u, X, stats, ws_x, nodes_push, &nodes);
    if (rc) goto done;
    /* start[i] = first node of interval i; nodes of interval i are start[i] .. start[i+1]-1 */
    for (i = 0, first = 0; i <= nt - 1; i++) {
        while (first < nodes.n && nodes.interval[first] < i) first++;
        start[i] = first;
    }
    for (i = 0; i < nt - 1; i++)
        if (start[i + 1] - start[i] > maxn) maxn = start[i + 1] - start[i];

    work = (double *)calloc((size_t)(np > 0 ? np : 1) + 2 * (size_t)nz + (size_t)(maxn + 1) * (3 * nx + 1) +
                                2 * (size_t)nx + (size_t)nx * nx + (size_t)nx * (np > 0 ? np : 1) + nx,
                            sizeof(double));
    if (!work) {
        rc = SYMODE_ERR_NOMEM;
        goto done;
    }
    gp = work;
    z = gp + (np > 0 ? np : 1);
    zout = z + nz;
    tn = zout + nz;
    xn = tn + (maxn + 1);
    fn = xn + (size_t)(maxn + 1) * nx;
    an = fn + (size_t)(maxn + 1) * nx;
    tmp1 = an + (size_t)(maxn + 1) * nx;
    tmp2 = tmp1 + nx;
    Jx = tmp2 + nx;
    Jp = Jx + (size_t)nx * nx;
    xbuf = Jp + (size_t)nx * (np > 0 ? np : 1);

    rc = symode_residuals(g, nt, times, X, p, u, data, sigma, NULL, loss, lam, gp);
    if (rc) goto done;
    for (i = 0; i < nt * nx; i++) scale = dmaxd(scale, fabs(lam[i]));

    c.g = g;
    c.variant = variant;
    c.tn = tn;
    c.xn = xn;
    c.fn = fn;
    c.an = an;
    c.Jx = Jx;
    c.Jp = Jp;
    c.xbuf = xbuf;
    c.nn = 0;
    memset(&am, 0, sizeof am);
    am.nx = nz;
    am.np = np;
    am.nu = nu;
    am.rhs = adj_rhs;
    am.jac = variant == SYMODE_ADJ_INTERPOLATE ? adj_jac : NULL;
    am.ctx = &c;
    am.nonautonomous = 1;
    oa = o;
    oa.atol = dmaxd(o.rtol * 1e-3 * scale, 1e-300);
    oa.h0 = 0.0;

    /* backward pass */
    memset(z, 0, (size_t)nz * sizeof(double));
    memcpy(variant == SYMODE_ADJ_BACKSOLVE ? z + nx : z, lam + (size_t)(nt - 1) * nx, (size_t)nx * sizeof(double));
    for (i = nt - 1; i >= 1; i--) {
        const double *ui = nu > 0 ? u + (size_t)(i - 1) * nu : u;
        int n0 = start[i - 1], n1 = start[i], stiff = 0;
        double ts[2];
        double *a;
        for (k = n0; k < n1; k++) stiff |= nodes.method[k] == SYMODE_STIFF;
        /* the adjoint is as stiff as the forward problem: take the forward method of this interval */
        if (o.method == SYMODE_AUTO) oa.method = stiff ? SYMODE_STIFF : SYMODE_EXPLICIT;
        /* an adjoint needing far more steps than the forward pass is diverging (backsolve on stiff problems) */
        oa.max_steps = 100L * (n1 - n0 + 1) + 20000L;
        c.t_hi = times[i];
        if (variant == SYMODE_ADJ_INTERPOLATE) {
            c.nn = n1 - n0 + 1;
            memcpy(tn, nodes.t + n0, (size_t)(n1 - n0) * sizeof(double));
            memcpy(xn, nodes.x + (size_t)n0 * nx, (size_t)(n1 - n0) * nx * sizeof(double));
            tn[n1 - n0] = times[i];
            memcpy(xn + (size_t)(n1 - n0) * nx, X + (size_t)i * nx, (size_t)nx * sizeof(double));
            for (k = 0; k < c.nn; k++)
                if (g->m.rhs(g->m.ctx, tn[k], xn + (size_t)k * nx, p, ui, fn + (size_t)k * nx) ||
                    second_derivative(g, tn[k], xn + (size_t)k * nx, fn + (size_t)k * nx, p, ui, tmp1, tmp2,
                                      an + (size_t)k * nx)) {
                    rc = SYMODE_ERR_RHS;
                    break;
                }
            if (rc) break;
        } else {
            memcpy(z, X + (size_t)i * nx, (size_t)nx * sizeof(double)); /* reset x to the checkpoint */
        }
        ts[0] = 0.0;
        ts[1] = times[i] - times[i - 1];
        rc = symode_integrate_ws(&am, &oa, 2, ts, z, p, ui, zout, &st, ws);
        if (rc) {
            if (stats) {
                stats->fail_interval = i - 1;
                stats->fail_t = times[i] - (isfinite(st.fail_t) ? st.fail_t : 0.0);
            }
            break;
        }
        memcpy(z, zout + nz, (size_t)nz * sizeof(double));
        a = variant == SYMODE_ADJ_BACKSOLVE ? z + nx : z;
        for (k = 0; k < nx; k++) a[k] += lam[(size_t)(i - 1) * nx + k];
        if (stats) {
            stats->n_steps += st.n_steps;
            stats->n_accepted += st.n_accepted;
            stats->n_rejected += st.n_rejected;
            stats->n_rhs += st.n_rhs;
            stats->n_jac += st.n_jac;
            stats->n_lu += st.n_lu;
        }
    }
    if (!rc) {
        const double *a = variant == SYMODE_ADJ_BACKSOLVE ? z + nx : z;
        const double *gacc = a + nx;
        memcpy(grad, a, (size_t)nx * sizeof(double));
        for (k = 0; k < np; k++) grad[nx + k] = gacc[k] + gp[k];
    }
done:
    nodes_free(&nodes);
    free(X);
    free(start);
    free(work);
    free(ws);
    free(ws_x);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* discrete adjoint / discrete forward sensitivities through the recorded steps (symode_tape)  */
/* ------------------------------------------------------------------------------------------ */

int symode_loss_discrete(const symode_gmodel *g, const symode_options *opt, int nt, const double *times,
                         const double *x0, const double *p, const double *u, const double *data,
                         const double *sigma, double *loss, double *grad, double *rjac, double *r,
                         symode_stats *stats)
{
    int nx = g->m.nx, np = g->m.np, ny = g->ny, ns = nx + np, i, rc;
    double *X = NULL, *lam = NULL, *gp = NULL, *S = NULL, L = 0.0;
    symode_tape *tape = NULL;
    obs_buf b;
    if (!loss || !grad || nt < 1 || !g->d.vjp) return SYMODE_ERR_ARGS;
    b.y = NULL;
    tape = symode_tape_new();
    X = (double *)malloc(((size_t)nt * nx * 2 + (size_t)(np > 0 ? np : 1)) * sizeof(double));
    if (!tape || !X) {
        rc = SYMODE_ERR_NOMEM;
        goto done;
    }
    lam = X + (size_t)nt * nx;
    gp = lam + (size_t)nt * nx;
    memset(gp, 0, (size_t)(np > 0 ? np : 1) * sizeof(double));
    rc = symode_integrate_record(&g->m, opt, nt, times, x0, p, u, X, stats, tape);
    if (rc) goto done;
    if (!rjac) {
        rc = symode_residuals(g, nt, times, X, p, u, data, sigma, r, loss, lam, gp);
        if (rc) goto done;
        rc = symode_tape_adjoint(tape, &g->m, &g->d, p, u, lam, grad, grad + nx);
        for (i = 0; i < np && !rc; i++) grad[nx + i] += gp[i];
        goto done;
    }
    /* residual Jacobian requested: discrete forward sensitivities */
    S = (double *)malloc((size_t)nt * nx * ns * sizeof(double));
    if (!S) {
        rc = SYMODE_ERR_NOMEM;
        goto done;
    }
    if ((rc = symode_tape_forward(tape, &g->m, &g->d, p, u, S))) goto done;
    if ((rc = obs_buf_init(&b, nx, np, ny))) goto done;
    memset(grad, 0, (size_t)ns * sizeof(double));
    for (i = 0; i < nt && !rc; i++)
        rc = residual_row(g, &b, times[i], X + (size_t)i * nx, p, interval_u(g, u, nt, i), data + (size_t)i * ny,
                          sigma + (size_t)i * ny, r ? r + (size_t)i * ny : NULL, &L, NULL, NULL,
                          S + (size_t)i * nx * ns, rjac + (size_t)i * ny * ns, grad);
    *loss = L;
done:
    free(b.y);
    free(S);
    free(X);
    symode_tape_free(tape);
    return rc;
}
