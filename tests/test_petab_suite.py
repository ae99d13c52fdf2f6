"""The PEtab test suite (format v1): every case within its own tolerances (llh, chi2, simulation table).

The vendored cases (tests/data/petab) always run; the full suite runs when ../shared/petab (or
$SYMODE_SHARED_PETAB) holds it. Without it the suite's tests are skipped locally, and
``test_suite_v1_is_complete`` fails under ``CI=true`` (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import require
from tests.petab_cases import SUITE_V1, VENDORED, case_dirs, check_case


def _assert_passes(case) -> None:
    d = check_case(case)
    assert d["llh"] <= d["tol_llh"], d
    assert d["chi2"] <= d["tol_chi2"], d
    assert d["sim"] <= d["tol_sim"], d


@pytest.mark.parametrize("case", case_dirs(VENDORED), ids=lambda p: p.name)
def test_vendored_case(case) -> None:
    _assert_passes(case)


SUITE = case_dirs(SUITE_V1)


@pytest.mark.skipif(not SUITE, reason=f"PEtab test suite not found at {SUITE_V1}")
@pytest.mark.parametrize("case", SUITE, ids=lambda p: p.name)
def test_suite_v1_case(case) -> None:
    _assert_passes(case)


def test_suite_v1_is_complete() -> None:
    require(bool(SUITE), f"PEtab test suite not found at {SUITE_V1} (set SYMODE_SHARED_PETAB)")
    assert len(SUITE) == 20
