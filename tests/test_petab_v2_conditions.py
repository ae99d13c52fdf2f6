"""PEtab v2 condition values that are expressions setting model parameters (symode.petab.periods.set_linear):
linear combinations of parameter-table entries are simulated and differentiated (test-suite case 0027, whose
llh and simulations tests/test_petab_suite.py checks); anything else is refused with a message."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from symode.petab.objective import PetabObjective
from symode.petab.problem import PetabError

CASE = Path(__file__).parent / "data" / "petab_v2" / "0027"


def test_linear_parameter_expressions_have_exact_gradients() -> None:
    obj = PetabObjective.from_yaml(CASE / "_0027.yaml", validate=False)
    pr = obj.problem
    # c0 sets offset_A = offset_A1_c0 + offset_A2_c0, c1 sets 0.333... * offset_A1_c1 (parameter table)
    theta = pr.theta()
    c0, c1 = pr.conditions["c0"], pr.conditions["c1"]
    k = list(pr.sbml.parameters).index("offset_A")
    ids = pr.parameter_ids
    assert c0.p(theta)[k] == pytest.approx(theta[ids.index("offset_A1_c0")] + theta[ids.index("offset_A2_c0")])
    assert c1.p(theta)[k] == pytest.approx(0.333333333333333 * theta[ids.index("offset_A1_c1")])
    ev = obj.evaluate(gradient=True)
    fwd = obj.evaluate(gradient=True, method="forward").gradient
    z0 = pr.to_scaled(theta)
    h = 1e-5
    fd = np.array([(obj.evaluate(pr.from_scaled(z0 + e)).llh - obj.evaluate(pr.from_scaled(z0 - e)).llh) / (2 * h)
                   for e in np.eye(len(z0)) * h])
    assert np.max(np.abs(ev.gradient - fd)) <= 1e-6 * np.max(np.abs(fd))
    assert np.max(np.abs(ev.gradient - fwd)) <= 1e-12 * np.max(np.abs(fd))
    # the estimated offset_A1_c1 enters with its coefficient: d llh / d offset = coefficient * d llh / d offset_A
    assert abs(ev.gradient[pr.estimated_ids.index("offset_A1_c1")]) > 0


@pytest.mark.parametrize(("value", "message"), [
    ("offset_A1_c0 * offset_A2_c0", "not linear"),
    ("offset_A1_c0 + k1 * 0 + A", "depends on 'A'"),
])
def test_other_parameter_expressions_are_refused(tmp_path: Path, value: str, message: str) -> None:
    case = tmp_path / "case"
    shutil.copytree(CASE, case)
    table = case / "_conditions.tsv"
    table.write_text(table.read_text().replace("offset_A1_c0 + offset_A2_c0", value))
    with pytest.raises(PetabError, match=message):
        PetabObjective.from_yaml(case / "_0027.yaml", validate=False)
