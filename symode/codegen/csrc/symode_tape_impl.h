/*
 * symode_tape_impl.h -- the tape's layout, shared by the recording (symode_tape_record.c) and the
 * derivative sweeps (symode_tape.c, symode_tape_forward.c). Internal: not part of the runtime's API
 * (symode_tape.h).
 */
#ifndef SYMODE_TAPE_IMPL_H
#define SYMODE_TAPE_IMPL_H

#include "symode_tape.h"

#include <stddef.h>

typedef struct {
    int interval, method;
    double t, h, tend, t1;
    double *sd;       /* stored stage values (NULL: not stored; replayed) */
    int *sp;          /* RODAS4: the integers of the stored factors */
    size_t bytes;     /* bytes of sd (and sp after it) */
} tape_step;

/* A block of stored stage values (steps are appended to the newest block; full blocks are kept, not
   moved: no copying as the tape grows). */
typedef struct stage_block {
    struct stage_block *next;
    size_t cap, used; /* bytes of data */
    double data[]; /* C99 flexible array member */
} stage_block;

struct symode_tape {
    int valid;        /* recording finished with rc == 0 */
    int nx, np, nu, nt;
    int nonaut;       /* m->nonautonomous at recording time */
    int jac_fd;       /* recorded with m->jac == NULL */
    long n, cap, nstiff;
    tape_step *steps;
    double *x;        /* n * nx step-start states */
    /* stored stage values: DOPRI5 6 nx doubles (K_1..K_6); RODAS4 k_1..k_6 and the compressed LU
       factors of E: 7 nx + nl + nu doubles (k, dinv, lv, uv), 3 nx + 2 + nl + nu ints (piv, lp, up, li, ui) */
    stage_block *blocks;               /* newest first */
    size_t stage_bytes, stage_limit;   /* bytes stored / at most */
};

/* Size of a new block of stage values (more if one step needs it). */
#define TAPE_BLOCK_BYTES ((size_t)256 << 10)

/* Default limit of the stored stage values per tape (steps beyond it are replayed). */
#define TAPE_STAGE_LIMIT_DEFAULT ((size_t)256 << 20)

/* The work space of a derivative sweep over a tape (symode_tape.c, symode_tape_forward.c). */
typedef struct {
    const symode_tape *tp;
    const symode_model *m;
    const symode_derivs *d;
    const double *p;
    const double *u; /* current interval */
    int n, np, P;    /* P = n + np (forward) */
    /* the current step: stage states, stage values (DP5: K = f; RODAS4: K = k_i) and the factors of E,
       from the tape (stored step) or from the replay into Kbuf / Ebuf / pivbuf */
    double *Y[6];
    const double *K[6];
    const symode_lu *lu;   /* RODAS4: the factors of E (&lu_tape or &lu_buf) */
    double *Kbuf[6], *Ebuf, *lbuf_d;
    int *lbuf_i;
    symode_lu lu_buf, lu_tape;
    double *F[6];        /* RODAS4 replay: f(T_i, Y_i) (F[0] = f(t, y)) */
    double *ynew, *fx, *ftmp;
    double *J;
    double T[6];         /* stage times */
    double delt;         /* RODAS4 non-autonomous df/dt increment (0: autonomous) */
    /* adjoint */
    double *kbar[6], *rbar[6], *ybar, *w, *ox, *op, *gp, *fxbar, *Kcat;
    /* forward (n x P matrices) */
    double *dK[6], *dY, *G, *Gt, *dfx, *Jp, *Jx2, *Jp2, *ep, *colv;
    double *Mx, *Mp; /* RODAS4 forward: d(J k)/dx (n x n), d(J k)/dp (n x np), column-major */
} wspace;


/* Allocate the sweep's arrays (forward: also the n x (n + np) ones) in one block; the block or NULL. */
void *symode_tape_ws_alloc(wspace *w, int n, int np, int forward);
/* The stage states, stage values and factors of step s from y (stored on the tape, or replayed). */
int symode_tape_step_prepare(wspace *w, const tape_step *s, const double *y);
/* SYMODE_ERR_ARGS unless the tape is valid and recorded with this model's sizes (and a Jacobian for
   RODAS4 steps); else 0. */
int symode_tape_check(const symode_tape *tape, const symode_model *m, const double *p, const double *u);
/* The inputs of interval i. */
const double *symode_tape_interval_u(const symode_model *m, const double *u, int i);

#endif
