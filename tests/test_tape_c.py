"""Tests for the discrete adjoint / forward sensitivities (symode/codegen/csrc/symode_tape.c).

Compiles tests/csrc/test_tape_main.c together with the tape and the integrator, runs it and asserts
on its "OK <name> | info" / "FAIL <name> | info" lines. Does not import the symode package.
"""

from .c_driver import CDriverTests
from .conftest import CSRC, REPO

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


class TestTapeDriver(CDriverTests):
    DRIVER = REPO / "tests" / "csrc" / "test_tape_main.c"
    SOURCES = tuple(CSRC / n for n in ("symode_tape.c", "symode_tape_record.c", "symode_tape_forward.c",
                                       "symode_tape_forward_dense.c", "symode_integrator.c", "symode_steppers.c"))
    EXPECTED = EXPECTED
    WARNING_FREE = (*SOURCES, CSRC / "symode_gradient.c")

    def test_perf_info(self, driver_run: tuple) -> None:
        res, _ = driver_run
        info = [line for line in res.stdout.splitlines() if line.startswith("INFO perf_chemostat")]
        assert info, res.stdout
        print(info[0])
