"""Tests for the seeded forward sensitivities with sparse Jacobians (symode/codegen/csrc/symode_tape_forward.c).

Compiles tests/csrc/test_forward_main.c with the tape, the integrator and the dense reference
(symode_tape_forward_dense.c), runs it and asserts on its "OK <name> | info" / "FAIL <name> | info" lines.
Does not import the symode package.
"""

from .c_driver import CDriverTests
from .conftest import CSRC, REPO

# seeded (sparse; dense with vjp2; dense with jvp2) against the dense reference times the seed and against
# central differences of the replayed map
EXPECTED = ["seeded_explicit", "seeded_stiff", "seeded_auto", "seeded_stiff_nonaut", "seeded_explicit_nonaut",
            "seeded_errors_args"]


class TestForwardDriver(CDriverTests):
    DRIVER = REPO / "tests" / "csrc" / "test_forward_main.c"
    SOURCES = tuple(CSRC / n for n in ("symode_tape.c", "symode_tape_record.c", "symode_tape_forward.c",
                                       "symode_tape_forward_dense.c", "symode_integrator.c", "symode_steppers.c"))
    EXPECTED = EXPECTED
    WARNING_FREE = (CSRC / "symode_tape_forward.c",)
