/* The sparse Jacobians of the forward sensitivities (symode_forward.h): CasADi's sym_jac_sp and sym_hes_sp
   (their outputs are the nonzeros only) and their patterns. */
static int jac_sp_adapter(void *ctx, double t, const double *x, const double *p, const double *u, double *jx,
                          double *jp) {
    const casadi_real *arg[sym_jac_sp_SZ_ARG > 4 ? sym_jac_sp_SZ_ARG : 4];
    casadi_real *res[sym_jac_sp_SZ_RES > 2 ? sym_jac_sp_SZ_RES : 2];
    casadi_int iw[sym_jac_sp_SZ_IW + 1];
    SYMODE_WORK(w_, sym_jac_sp_SZ_W);
    (void)ctx;
    arg[0] = &t; arg[1] = x; arg[2] = p; arg[3] = u; res[0] = jx; res[1] = jp;
    SYMODE_RETURN(w_, sym_jac_sp(arg, res, iw, w_, 0));
}

static int hes_sp_adapter(void *ctx, double t, const double *x, const double *p, const double *u,
                          const double *v, double *hx, double *hp) {
    const casadi_real *arg[sym_hes_sp_SZ_ARG > 5 ? sym_hes_sp_SZ_ARG : 5];
    casadi_real *res[sym_hes_sp_SZ_RES > 2 ? sym_hes_sp_SZ_RES : 2];
    casadi_int iw[sym_hes_sp_SZ_IW + 1];
    SYMODE_WORK(w_, sym_hes_sp_SZ_W);
    (void)ctx;
    arg[0] = &t; arg[1] = x; arg[2] = p; arg[3] = u; arg[4] = v; res[0] = hx; res[1] = hp;
    SYMODE_RETURN(w_, sym_hes_sp(arg, res, iw, w_, 0));
}

/* The compressed-column patterns of sym_jac_sp's and sym_hes_sp's outputs (symode_forward.h) from CasADi's
   (which stores a dense pattern as [nrow, ncol, 1]). */
static int sparsity_adapter(int which, int *out) {
    const casadi_int *sp;
    casadi_int nrow, ncol, nnz, j, q;
    int dense;
    switch (which) {
    case SYMODE_SPARSE_JX: sp = sym_jac_sp_sparsity_out(0); break;
    case SYMODE_SPARSE_JP: sp = sym_jac_sp_sparsity_out(1); break;
    case SYMODE_SPARSE_HX: sp = sym_hes_sp_sparsity_out(0); break;
    case SYMODE_SPARSE_HP: sp = sym_hes_sp_sparsity_out(1); break;
    default: return -1;
    }
    nrow = sp[0];
    ncol = sp[1];
    dense = sp[2] == 1; /* else sp[2] = colind[0] = 0 */
    nnz = dense ? nrow * ncol : sp[2 + ncol];
    if (out) {
        out[0] = (int)nrow;
        out[1] = (int)ncol;
        for (j = 0; j <= ncol; j++) out[2 + j] = (int)(dense ? j * nrow : sp[2 + j]);
        for (q = 0; q < nnz; q++) out[3 + ncol + q] = (int)(dense ? q % nrow : sp[3 + ncol + q]);
    }
    return (int)(3 + ncol + nnz);
}

static const symode_sparse_derivs SPARSE_DERIVS = {jac_sp_adapter, hes_sp_adapter, sparsity_adapter};
#define SYMODE_SPARSE_DERIVS (&SPARSE_DERIVS)
