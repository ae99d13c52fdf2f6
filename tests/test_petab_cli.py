"""``symode petab evaluate`` and ``symode fit PROBLEM.yaml``: outputs, and one located line with exit
status 2 for bad input."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from symode.cli.main import main
from tests.petab_cases import VENDORED


@pytest.fixture
def case(tmp_path):
    d = tmp_path / "0005"
    shutil.copytree(VENDORED / "0005", d)
    return d


def test_evaluate_writes_json_and_simulations(case, tmp_path, capsys) -> None:
    out, sims = tmp_path / "out.json", tmp_path / "sims.tsv"
    rc = main(["petab", "evaluate", str(case / "_0005.yaml"), "--gradient", "--json", str(out),
               "--simulations", str(sims)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"llh", "chi2", "n_measurements", "gradient", "timings_s"}
    assert set(doc["timings_s"]) == {"build", "simulate", "gradient"}
    assert set(doc["gradient"]) == {"a0", "b0", "k1", "k2", "offset_A_c0", "offset_A_c1"}
    assert doc["n_measurements"] == 4
    import yaml

    sol = yaml.safe_load((case / "_0005_solution.yaml").read_text())
    assert abs(doc["llh"] - sol["llh"]) < sol["tol_llh"]
    table = pd.read_csv(sims, sep="\t")
    want = pd.read_csv(case / "_simulations.tsv", sep="\t")
    assert list(table.columns) == list(want.columns)
    assert (abs(table["simulation"] - want["simulation"]) < sol["tol_simulations"]).all()


def test_parameters_table_overrides_nominal_values(case, tmp_path) -> None:
    params = tmp_path / "p.tsv"
    params.write_text("parameterId\tnominalValue\noffset_A_c0\t5.0\n")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["petab", "evaluate", str(case / "_0005.yaml"), "--json", str(a)]) == 0
    assert main(["petab", "evaluate", str(case / "_0005.yaml"), "--parameters", str(params), "--json", str(b)]) == 0
    assert json.loads(a.read_text())["llh"] != json.loads(b.read_text())["llh"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("symode: error: ")
    assert "Traceback" not in err[0]
    return err[0]


def test_unknown_observable_is_located(case, capsys) -> None:
    m = case / "_measurements.tsv"
    lines = m.read_text().splitlines()
    lines[2] = lines[2].replace("obs_a", "obs_zz", 1)
    m.write_text("\n".join(lines) + "\n")
    assert main(["petab", "evaluate", str(case / "_0005.yaml")]) == 2
    line = _error_line(capsys)
    assert "_measurements.tsv:3: observableId: unknown observable 'obs_zz'" in line


def test_bad_formula_and_parameter_table_are_located(case, tmp_path, capsys) -> None:
    o = case / "_observables.tsv"
    o.write_text(o.read_text().replace("A + offset_A", "A + __import__('os')"))
    assert main(["petab", "evaluate", str(case / "_0005.yaml")]) == 2
    assert "_observables.tsv:2: observableFormula:" in _error_line(capsys)
    shutil.copy(VENDORED / "0005" / "_observables.tsv", o)
    params = tmp_path / "p.tsv"
    params.write_text("parameterId\tnominalValue\nk1\t0.5\nnot_there\t1\n")
    assert main(["petab", "evaluate", str(case / "_0005.yaml"), "--parameters", str(params)]) == 2
    assert "p.tsv:3: parameterId: unknown parameterId 'not_there'" in _error_line(capsys)


def test_unsupported_sbml_is_refused_with_its_id(case, capsys) -> None:
    model = case / "_model.xml"
    text = model.read_text()
    event = ('<listOfEvents><event id="boom" useValuesFromTriggerTime="true"><trigger initialValue="false" '
             'persistent="true"><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><gt/><ci> A </ci><cn> 1 </cn>'
             '</apply></math></trigger><listOfEventAssignments><eventAssignment variable="A"><math '
             'xmlns="http://www.w3.org/1998/Math/MathML"><cn> 0 </cn></math></eventAssignment>'
             '</listOfEventAssignments></event></listOfEvents>')
    model.write_text(text.replace("</model>", event + "</model>"))
    assert main(["petab", "evaluate", str(case / "_0005.yaml")]) == 2
    # a state-triggered event (time-triggered ones are imported: tests/test_petab_events.py)
    assert "event 'boom': the trigger depends on 'A': state-triggered events are not supported" in _error_line(capsys)


def test_missing_problem_file(tmp_path, capsys) -> None:
    assert main(["petab", "evaluate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such file" in _error_line(capsys)


def test_fit_a_petab_problem(tmp_path, capsys) -> None:
    out = tmp_path / "fit"
    rc = main(["fit", str(VENDORED / "0001" / "_0001.yaml"), "-o", str(out), "--starts", "3", "--workers", "1",
               "--quiet"])
    assert rc == 0
    doc = json.loads((out / "fit.json").read_text())
    assert doc["n_starts"] == 3 and doc["llh"] >= -0.8475 - 1e-9   # at least as good as the nominal point
    table = pd.read_csv(out / "parameters.tsv", sep="\t")
    assert set(table["parameterId"]) == {"a0", "b0", "k1", "k2"}
    assert (out / "report.md").read_text().startswith("# Fit of")
    # the fitted table evaluates to the reported optimum
    j = tmp_path / "at_opt.json"
    assert main(["petab", "evaluate", str(VENDORED / "0001" / "_0001.yaml"), "--parameters",
                 str(out / "parameters.tsv"), "--json", str(j)]) == 0
    assert json.loads(j.read_text())["llh"] == pytest.approx(doc["llh"], abs=1e-8)
