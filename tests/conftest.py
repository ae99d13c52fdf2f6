from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
SHARED = Path(os.environ.get("SYMODE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "chemostat-dev" / "data.csv").exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def chemostat_model():
    from symode.solve.model import build_model

    return build_model(SPECS / "chemostat.yaml")


# ----------------------------------------------------------------------------------------------------
# C drivers of the hand-written C (tests/csrc/*_main.c: "OK <name> | info" / "FAIL <name> | info" lines)
# ----------------------------------------------------------------------------------------------------

CSRC = REPO / "symode" / "codegen" / "csrc"
C_DRIVER_CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def c_compiler() -> str | None:
    """cc or gcc (the C tests do not import symode)."""
    import shutil

    return shutil.which("cc") or shutil.which("gcc")


def compile_c_driver(out: Path, driver: Path, sources: list[Path], extra_flags: tuple[str, ...] | list[str] = (),
                     check: bool = True):
    """Compile a C test driver with symode's C sources into the executable ``out``."""
    import subprocess

    cmd = [c_compiler(), *C_DRIVER_CFLAGS, *extra_flags, f"-I{CSRC}", str(driver), *map(str, sources), "-lm", "-o",
           str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check:
        assert res.returncode == 0, f"compilation failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}"
    return res


def parse_c_driver(stdout: str) -> dict[str, tuple[str, str]]:
    """name -> (OK or FAIL, info) from a driver's output."""
    results = {}
    for line in stdout.splitlines():
        parts = line.split(" | ", 1)
        head = parts[0].split()
        if len(head) == 2 and head[0] in ("OK", "FAIL"):
            results[head[1]] = (head[0], parts[1] if len(parts) > 1 else "")
    return results
