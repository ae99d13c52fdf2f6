"""Tests for the discrete adjoint / forward sensitivities (symode/codegen/csrc/symode_tape.c).

Compiles tests/csrc/test_tape_main.c together with the tape and the integrator, runs it and asserts
on its "OK <name> | info" / "FAIL <name> | info" lines. Does not import the symode package.
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

SOURCES = [CSRC / n for n in ("symode_tape.c", "symode_tape_record.c", "symode_tape_forward.c",
                              "symode_tape_forward_dense.c", "symode_integrator.c", "symode_steppers.c")]
DRIVER = REPO / "tests" / "csrc" / "test_tape_main.c"

CC = c_compiler()
VALGRIND = shutil.which("valgrind")
CFLAGS = C_DRIVER_CFLAGS

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) found")

# every check the driver must report as OK
EXPECTED = [
    "derivcheck_nl3", "derivcheck_chem", "derivcheck_lin2",
    # replay bit-identical, adjoint vs forward, both vs finite differences of the replayed map
    "nl3_explicit", "nl3_stiff", "nl3_auto",
    "nl3_nonaut_explicit", "nl3_nonaut_stiff", "nl3_nonaut_auto",
    "chem_auto", "chem_stiff", "chem_explicit",
    "lin2_explicit", "lin2_stiff", "lin2_auto",
    # against the exact continuous sensitivities / a tight-tolerance reference
    "lin2_explicit_vs_exact", "lin2_stiff_vs_exact", "lin2_auto_vs_exact",
    "chem_gradient_vs_continuous",
    "obs_at_t0", "single_time_point", "record_bit_identical", "errors_args", "explicit_vjp_only",
    "stiff_forward_vjp2_vs_jvp2",
    "perf_chemostat_runs",
]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    exe = tmp_path_factory.mktemp("tape") / "test_tape_main"
    compile_c_driver(exe, DRIVER, SOURCES)
    return exe


@pytest.fixture(scope="module")
def driver_run(driver):
    res = subprocess.run([str(driver)], capture_output=True, text=True, timeout=600)
    return res, parse_c_driver(res.stdout)


@pytest.mark.parametrize("src", ["symode_tape.c", "symode_tape_record.c", "symode_tape_forward.c",
                                 "symode_tape_forward_dense.c", "symode_integrator.c", "symode_steppers.c",
                                 "symode_gradient.c"])
def test_compiles_warning_free(tmp_path, src):
    cmd = [CC, *CFLAGS, "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", f"-I{CSRC}", "-c",
           str(CSRC / src), "-o", str(tmp_path / "x.o")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_driver_all_ok(driver_run):
    assert_driver_all_ok(*driver_run, EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_check(driver_run, name):
    assert_check_ok(driver_run[1], name)


def test_perf_info(driver_run):
    res, _ = driver_run
    info = [line for line in res.stdout.splitlines() if line.startswith("INFO perf_chemostat")]
    assert info, res.stdout
    print(info[0])


@pytest.mark.slow
@pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed")
def test_valgrind_clean(driver):
    assert_valgrind_clean(VALGRIND, driver)


@pytest.mark.slow
def test_sanitizers(tmp_path):
    assert_sanitizers_clean(tmp_path / "test_tape_asan", DRIVER, SOURCES)
