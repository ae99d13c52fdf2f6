/*
 * symode_tape_record.c -- recording a solve on a tape (see symode_tape.h): every accepted step of
 * symode_integrate_ws_hook() with its start state and, within the tape's memory limit, its stage
 * values (DOPRI5's K_1..K_6; RODAS4's k_1..k_6 and the compressed LU factors of E), in blocks that
 * are appended to and never moved. The derivative sweeps over a tape are in symode_tape.c.
 */
#include "symode_tape_impl.h"
#include "symode_methods.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void free_blocks(symode_tape *tp)
{
    while (tp->blocks) {
        stage_block *b = tp->blocks;
        tp->blocks = b->next;
        free(b);
    }
    tp->stage_bytes = 0;
}

symode_tape *symode_tape_new(void)
{
    symode_tape *t = (symode_tape *)calloc(1, sizeof(symode_tape));
    if (t) t->stage_limit = TAPE_STAGE_LIMIT_DEFAULT;
    return t;
}

void symode_tape_free(symode_tape *tape)
{
    if (!tape) return;
    free(tape->steps);
    free(tape->x);
    free_blocks(tape);
    free(tape);
}

void symode_tape_set_stage_limit(symode_tape *tape, size_t bytes)
{
    if (tape) tape->stage_limit = bytes;
}

long symode_tape_nstored(const symode_tape *tape)
{
    long k, c = 0;
    if (!tape) return -1;
    for (k = 0; k < tape->n; k++) c += tape->steps[k].sd != NULL;
    return c;
}

/* bytes bytes (a multiple of 8) from the newest block, or from a new one; NULL if out of memory */
static void *stage_alloc(symode_tape *tp, size_t bytes)
{
    stage_block *b = tp->blocks;
    void *q;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > TAPE_BLOCK_BYTES ? bytes : TAPE_BLOCK_BYTES;
        b = (stage_block *)malloc(offsetof(stage_block, data) + cap);
        if (!b) return NULL;
        b->next = tp->blocks;
        b->cap = cap;
        b->used = 0;
        tp->blocks = b;
    }
    q = (char *)b->data + b->used;
    b->used += bytes;
    return q;
}

/* Store the step's stage values (and factors) on the tape if the limit allows; st->sd = NULL otherwise
   (failing to store is not an error: the step is then replayed). Layout: the doubles (K, then for RODAS4
   dinv, lv, uv), then the integers (piv, lp, up, li, ui). */
static void store_stages(symode_tape *tp, tape_step *st, const symode_step_info *info)
{
    const size_t n = (size_t)tp->nx;
    size_t nd = 6 * n, ni = 0, nl = 0, nu = 0, bytes, j;
    const symode_lu *f = info->lu;
    double *q;
    int *qi;
    st->sd = NULL;
    st->sp = NULL;
    st->bytes = 0;
    if (!info->k[0]) return;
    if (info->method == SYMODE_STIFF) {
        if (!f) return;
        nl = (size_t)f->lp[n];
        nu = (size_t)f->up[n];
        nd += n + nl + nu;
        ni = 3 * n + 2 + nl + nu;
    }
    bytes = (nd * sizeof(double) + ni * sizeof(int) + 7) & ~(size_t)7;
    if (tp->stage_bytes + bytes > tp->stage_limit) return;
    q = (double *)stage_alloc(tp, bytes);
    if (!q) return;
    tp->stage_bytes += bytes;
    st->sd = q;
    st->bytes = bytes;
    for (j = 0; j < 6; j++) memcpy(q + j * n, info->k[j], n * sizeof(double));
    if (ni) {
        q += 6 * n;
        memcpy(q, f->dinv, n * sizeof(double));
        memcpy(q + n, f->lv, nl * sizeof(double));
        memcpy(q + n + nl, f->uv, nu * sizeof(double));
        qi = (int *)(void *)(q + n + nl + nu);
        memcpy(qi, f->piv, n * sizeof(int));
        memcpy(qi + n, f->lp, (n + 1) * sizeof(int));
        memcpy(qi + 2 * n + 1, f->up, (n + 1) * sizeof(int));
        memcpy(qi + 3 * n + 2, f->li, nl * sizeof(int));
        memcpy(qi + 3 * n + 2 + nl, f->ui, nu * sizeof(int));
        st->sp = qi;
    }
}

long symode_tape_nsteps(const symode_tape *tape) { return tape ? tape->n : -1; }
long symode_tape_nstiff(const symode_tape *tape) { return tape ? tape->nstiff : -1; }
int symode_tape_nx(const symode_tape *tape) { return tape && tape->valid ? tape->nx : 0; }
int symode_tape_nt(const symode_tape *tape) { return tape && tape->valid ? tape->nt : 0; }

static int tape_hook(void *hctx, const symode_step_info *info, const double *x)
{
    symode_tape *tp = (symode_tape *)hctx;
    tape_step *st;
    if (tp->n == tp->cap) {
        long nc = tp->cap > 0 ? 2 * tp->cap : 256;
        tape_step *ns;
        double *nx_;
        if ((size_t)nc > ((size_t)-1) / (sizeof(double) * (size_t)tp->nx + sizeof(tape_step)))
            return 1;
        ns = (tape_step *)realloc(tp->steps, (size_t)nc * sizeof(tape_step));
        if (!ns) return 1;
        tp->steps = ns;
        nx_ = (double *)realloc(tp->x, (size_t)nc * (size_t)tp->nx * sizeof(double));
        if (!nx_) return 1;
        tp->x = nx_;
        tp->cap = nc;
    }
    st = tp->steps + tp->n;
    st->interval = info->interval;
    st->method = info->method;
    st->t = info->t;
    st->h = info->h;
    st->tend = info->tend;
    st->t1 = info->t1;
    memcpy(tp->x + (size_t)tp->n * tp->nx, x, (size_t)tp->nx * sizeof(double));
    store_stages(tp, st, info);
    if (info->method == SYMODE_STIFF) tp->nstiff++;
    tp->n++;
    return 0;
}

int symode_integrate_record(const symode_model *m, const symode_options *opt, int nt,
                            const double *times, const double *x0, const double *p,
                            const double *u, double *xout, symode_stats *stats,
                            symode_tape *tape)
{
    void *work;
    int rc;
    if (!tape) return symode_integrate(m, opt, nt, times, x0, p, u, xout, stats);
    tape->valid = 0;
    tape->n = 0;
    tape->nstiff = 0;
    free_blocks(tape);
    if (!m || m->nx <= 0) return symode_integrate(m, opt, nt, times, x0, p, u, xout, stats);
    tape->nx = m->nx;
    tape->np = m->np;
    tape->nu = m->nu;
    tape->nt = nt;
    tape->nonaut = m->nonautonomous != 0;
    tape->jac_fd = m->jac == NULL;
    work = malloc(symode_workspace_size(m->nx));
    if (!work) {
        if (stats) stats_clear(stats);
        return SYMODE_ERR_NOMEM;
    }
    rc = symode_integrate_ws_hook(m, opt, nt, times, x0, p, u, xout, stats, work, tape_hook, tape);
    free(work);
    tape->valid = rc == 0;
    return rc;
}

