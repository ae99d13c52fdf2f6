"""The tests every C test driver gets (tests/csrc/test_*_main.c print "OK <name> | info" / "FAIL <name> |
info" lines): each of its sources compiles warning-free alone, the driver passes every check and reports the
expected ones, and (slow) it runs clean under valgrind and the sanitizers.

A test module subclasses :class:`CDriverTests` as ``Test...`` with ``DRIVER`` (the driver's C file),
``SOURCES`` (symode's C files it is linked with), ``EXPECTED`` (checks that must be reported OK) and
``WARNING_FREE`` (sources compiled alone with extra warnings). The drivers do not import symode."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import (
    C_DRIVER_CFLAGS,
    CSRC,
    assert_check_ok,
    assert_driver_all_ok,
    assert_sanitizers_clean,
    assert_valgrind_clean,
    c_compiler,
    compile_c_driver,
    parse_c_driver,
)

CC = c_compiler()
VALGRIND = shutil.which("valgrind")


@pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) found")
class CDriverTests:
    DRIVER: Path
    SOURCES: tuple[Path, ...]
    EXPECTED: list[str]
    WARNING_FREE: tuple[Path, ...]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "name" in metafunc.fixturenames:
            metafunc.parametrize("name", self.EXPECTED)
        if "src" in metafunc.fixturenames:
            metafunc.parametrize("src", self.WARNING_FREE, ids=lambda p: p.name)

    @pytest.fixture(scope="class")
    def driver(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        exe = tmp_path_factory.mktemp("driver") / self.DRIVER.stem
        compile_c_driver(exe, self.DRIVER, list(self.SOURCES))
        return exe

    @pytest.fixture(scope="class")
    def driver_run(self, driver: Path) -> tuple[subprocess.CompletedProcess, dict[str, tuple[str, str]]]:
        res = subprocess.run([str(driver)], capture_output=True, text=True, timeout=600)
        return res, parse_c_driver(res.stdout)

    def test_compiles_warning_free(self, tmp_path: Path, src: Path) -> None:
        cmd = [CC, *C_DRIVER_CFLAGS, "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", f"-I{CSRC}", "-c",
               str(src), "-o", str(tmp_path / "x.o")]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr

    def test_driver_all_ok(self, driver_run: tuple) -> None:
        assert_driver_all_ok(*driver_run, self.EXPECTED)

    def test_check(self, driver_run: tuple, name: str) -> None:
        assert_check_ok(driver_run[1], name)

    @pytest.mark.slow
    @pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed")
    def test_valgrind_clean(self, driver: Path) -> None:
        assert_valgrind_clean(VALGRIND, driver)

    @pytest.mark.slow
    def test_sanitizers(self, tmp_path: Path) -> None:
        assert_sanitizers_clean(tmp_path / f"{self.DRIVER.stem}_asan", self.DRIVER, list(self.SOURCES))
