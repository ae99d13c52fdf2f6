/*
 * symode_tape_impl.h -- the tape's layout, shared by the recording (symode_tape_record.c) and the
 * derivative sweeps (symode_tape.c). Internal: not part of the runtime's API (symode_tape.h).
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

#endif
