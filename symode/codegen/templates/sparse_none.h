/* Wide networks (MX code): no sparse forward functions (their Jacobians are dense, and the functions would
   double the C); the forward sensitivities use the dense Jacobians. */
#define SYMODE_SPARSE_DERIVS NULL
