"""Tests for the C ODE integrator (symode/codegen/csrc/symode_integrator.c).

Compiles tests/csrc/test_integrator_main.c together with the integrator, runs it and asserts on its
"OK <name> | info" / "FAIL <name> | info" lines. Does not import the symode package.
"""

import shutil
import subprocess

import pytest

from .conftest import (
    C_DRIVER_CFLAGS,
    CSRC,
    REPO,
    assert_check_ok,
    assert_driver_all_ok,
    assert_sanitizers_clean,
    assert_valgrind_clean,
    c_compiler,
    compile_c_driver,
    parse_c_driver,
)

INTEGRATOR = CSRC / "symode_integrator.c"
STEPPERS = CSRC / "symode_steppers.c"
DRIVER = REPO / "tests" / "csrc" / "test_integrator_main.c"

CC = c_compiler()
VALGRIND = shutil.which("valgrind")
CFLAGS = C_DRIVER_CFLAGS

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) found")

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


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    exe = tmp_path_factory.mktemp("integrator") / "test_integrator_main"
    compile_c_driver(exe, DRIVER, [INTEGRATOR, STEPPERS])
    return exe


@pytest.fixture(scope="module")
def driver_run(driver):
    res = subprocess.run([str(driver)], capture_output=True, text=True, timeout=600)
    return res, parse_c_driver(res.stdout)


@pytest.mark.parametrize("src", [INTEGRATOR, STEPPERS], ids=lambda p: p.name)
def test_integrator_compiles_warning_free(tmp_path, src):
    cmd = [CC, *CFLAGS, "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-c",
           str(src), "-o", str(tmp_path / "x.o")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_driver_all_ok(driver_run):
    assert_driver_all_ok(*driver_run, EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_check(driver_run, name):
    assert_check_ok(driver_run[1], name)


@pytest.mark.slow
@pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed")
def test_valgrind_clean(driver):
    assert_valgrind_clean(VALGRIND, driver)


@pytest.mark.slow
def test_sanitizers(tmp_path):
    assert_sanitizers_clean(tmp_path / "test_integrator_asan", DRIVER, [INTEGRATOR, STEPPERS])
