"""Tests for the C ODE integrator (symode/codegen/csrc/symode_integrator.c).

Compiles tests/csrc/test_integrator_main.c together with the integrator, runs it and asserts on its
"OK <name> | info" / "FAIL <name> | info" lines. Does not import the symode package.
"""

from .c_driver import CDriverTests
from .conftest import CSRC, REPO

INTEGRATOR = (CSRC / "symode_integrator.c", CSRC / "symode_steppers.c")

# every check the driver must report as OK
EXPECTED = [
    "lu_compressed",
    "jaccheck_rigid", "jaccheck_rober", "jaccheck_vdp", "jaccheck_chemostat", "jaccheck_nonaut",
    "decay_explicit_1e-08", "decay_explicit_1e-10", "decay_stiff_1e-08", "decay_stiff_1e-10",
    "decay_auto_1e-08", "decay_auto_1e-10",
    "lin3_explicit_1e-08", "lin3_explicit_1e-10", "lin3_stiff_1e-08", "lin3_stiff_1e-10",
    "lin3_auto_1e-08", "lin3_auto_1e-10", "lin3_stiff_fdjac_1e-08", "lin3_stiff_fdjac_1e-10",
    "lin3_auto_fdjac_1e-08", "lin3_auto_fdjac_1e-10",
    "pwc_explicit", "pwc_stiff", "pwc_auto",
    "rigid_reference_agree", "order_dp5_rigid", "order_rodas4_rigid", "order_dp5_nonaut",
    "order_rodas4_nonaut", "order_dp5_manufactured", "order_rodas4_manufactured",
    "order_rodas4_manufactured_fdjac", "rodas4_nonautonomous_flag", "tolscale_dp5",
    "tolscale_rodas4",
    "robertson_reference_t40", "robertson_mass_conservation", "robertson_stiff_rtol1e-6",
    "robertson_auto_rtol1e-6", "robertson_stiff_fdjac_rtol1e-6", "robertson_auto_fdjac_rtol1e-6",
    "robertson_auto_vs_explicit",
    "vdp_reference", "vdp_mu1000_stiff", "vdp_mu1000_auto", "vdp_explicit_maxsteps",
    "nan_rhs_explicit", "nan_rhs_stiff", "nan_rhs_auto", "rhs_error_explicit", "rhs_error_stiff",
    "rhs_error_auto", "x0_nan", "args_times_not_increasing", "args_nx0", "args_p_null",
    "defaults_null_opt_stats", "single_time_point", "strerror",
    "prothero_robinson_stiff", "prothero_robinson_auto", "jac_nan", "jac_error",
    "workspace_and_big_h0",
    "chemostat_reference", "chemostat_auto", "chemostat_auto_fdjac", "chemostat_stiff",
    "chemostat_stiff_fdjac", "chemostat_explicit",
]


class TestIntegratorDriver(CDriverTests):
    DRIVER = REPO / "tests" / "csrc" / "test_integrator_main.c"
    SOURCES = INTEGRATOR
    EXPECTED = EXPECTED
    WARNING_FREE = INTEGRATOR
