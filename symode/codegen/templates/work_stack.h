/* CasADi work arrays on the stack (their sizes are small for models without wide networks). */
#define SYMODE_WORK(w, n) casadi_real w[(n) + 1]
#define SYMODE_RETURN(w, call) return (call)
