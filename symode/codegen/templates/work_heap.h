#include <stdlib.h>
/* Wide networks (MX code): the work arrays grow with the number of weights (~16 doubles per weight for
   df/dp), so beyond SYMODE_STACK_W doubles they go on the heap instead of the stack. */
#define SYMODE_STACK_W 16384
#define SYMODE_WORK(w, n)                                                                \
    casadi_real w##_stack[(n) + 1 <= SYMODE_STACK_W ? (n) + 1 : 1];                      \
    casadi_real *w = (n) + 1 <= SYMODE_STACK_W ? w##_stack                              \
                                               : (casadi_real *)malloc(((size_t)(n) + 1) * sizeof(casadi_real))
#define SYMODE_RETURN(w, call)                                                           \
    do {                                                                                 \
        int rc_;                                                                         \
        if (!w) return 1;                                                                \
        rc_ = (call);                                                                    \
        if (w != w##_stack) free(w);                                                     \
        return rc_;                                                                      \
    } while (0)
