"""Tests for the seeded forward sensitivities with sparse Jacobians (symode/codegen/csrc/symode_tape_forward.c).

Compiles tests/csrc/test_forward_main.c with the tape, the integrator and the dense reference
(symode_tape_forward_dense.c), runs it and asserts on its "OK <name> | info" / "FAIL <name> | info" lines.
Does not import the symode package.
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
DRIVER = REPO / "tests" / "csrc" / "test_forward_main.c"
CC = c_compiler()
VALGRIND = shutil.which("valgrind")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) found")

# seeded (sparse; dense with vjp2; dense with jvp2) against the dense reference times the seed and against
# central differences of the replayed map
EXPECTED = ["seeded_explicit", "seeded_stiff", "seeded_auto", "seeded_stiff_nonaut", "seeded_explicit_nonaut",
            "seeded_errors_args"]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    exe = tmp_path_factory.mktemp("forward") / "test_forward_main"
    compile_c_driver(exe, DRIVER, SOURCES)
    return exe


@pytest.fixture(scope="module")
def driver_run(driver):
    res = subprocess.run([str(driver)], capture_output=True, text=True, timeout=600)
    return res, parse_c_driver(res.stdout)


def test_compiles_warning_free(tmp_path):
    cmd = [CC, *C_DRIVER_CFLAGS, "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", f"-I{CSRC}", "-c",
           str(CSRC / "symode_tape_forward.c"), "-o", str(tmp_path / "x.o")]
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
    assert_sanitizers_clean(tmp_path / "test_forward_asan", DRIVER, SOURCES)
