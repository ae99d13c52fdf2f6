"""PEtab export: the problem passes petablint, simulates in an independent SBML simulator (libRoadRunner)
to symode's trajectories, inputs are exact at their change points, the write is atomic, bad input exits 2.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

pytest.importorskip("libsbml")
petab = pytest.importorskip("petab.v1")

from symode.cli.main import main  # noqa: E402
from symode.errors import SpecError, SymodeError  # noqa: E402
from symode.petab.export import MARKER, export_petab, petab_files  # noqa: E402
from symode.petab.export_math import SbmlMath, petab_formula  # noqa: E402
from symode.solve.model import build_model  # noqa: E402
from symode.solve.simulation import simulate  # noqa: E402
from symode.spec import load_spec, loads_spec  # noqa: E402
from symode.spec.data import read_csv  # noqa: E402
from symode.spec.params import apply_params  # noqa: E402
from tests.conftest import SPECS  # noqa: E402

SMALL = """\
symode: 1
name: small export test
reactor: {mode: chemostat, dilution: D, feed: {S: S0}}
states:
  S: {role: substrate, x0: 2.0, estimate: true, bounds: [0, null]}
  X: {role: main, x0: 0.5, estimate: true, bounds: [0, 100]}
  P: {x0: 0.0}
inputs:
  D: {interpolation: constant}
  T: {interpolation: linear}
parameters:
  S0: {value: 10.0, estimate: false}
  mu: {value: 0.8, bounds: [0.01, 10]}
  K: 0.5
  k: {value: 0.05, scale: lin, bounds: [0, 1]}
  c: {value: -0.01, scale: lin}
interactions:
  - {type: uptake, from: S, to: X, mu: mu, K: K, yield: 2.0}
  - {type: production, from: X, to: P, v: k}
  - id: leak
    type: custom
    rate: >-
      k * X * (1 + 0.3 * sin(2 * 3.14159 * t / 24)) * max(T, 0.5) / (1 + abs(T - 1) * exp(-T))
      + 0.001 * sqrt(S + 1) * tanh(P) + 0.002 * min(T, 1.5, 3 - T) + 1e-3 * log(1 + S) * pow(X, 1.5)
      - 2 * c * cos(P)
    stoichiometry: {P: 1.0, S: -0.5}
observables:
  X: {noise: {relative: 0.05, absolute: 0.01}}
  S: {noise: {absolute: 0.05}}
  OD: {expr: "0.4 * X + 0.1 * P / (1 + S)", noise: {relative: 0.03, absolute: 0.001}}
"""

# Two experiments: different dilution and T profiles; the second starts at t = 2 (shifted to 0 in PEtab,
# with the spec's t restored through time_offset). D repeats values (merged pieces); some cells are missing.
DATA1 = """\
time,D,T,X,S,OD
0,0.1,1.0,0.52,2.1,0.2
0.5,0.1,1.5,,1.9,
1,0.3,2.0,0.61,1.7,0.25
2,0.3,0.5,0.7,,0.3
3.5,0.05,0.25,0.8,1.2,0.33
5,0.2,3.0,0.9,1.0,
7,0.2,3.0,1.0,0.9,0.4
10,0.15,2.5,1.1,0.8,0.45
"""
DATA2 = """\
time,D,T,X,S,OD
2,0.25,0.3,0.5,2.0,0.2
3,0.25,0.6,0.55,1.8,0.22
4.25,0.30000000000000004,1.2,0.6,1.6,0.25
6,0.1,0.8,0.7,1.5,0.28
9,0.1,0.8,0.75,1.4,0.3
"""


@pytest.fixture()
def small(tmp_path):
    spec_path = tmp_path / "small.yaml"
    spec_path.write_text(SMALL)
    (tmp_path / "exp1.csv").write_text(DATA1)
    (tmp_path / "exp2.csv").write_text(DATA2)
    return load_spec(spec_path), [read_csv(tmp_path / "exp1.csv"), read_csv(tmp_path / "exp2.csv")]


def _petablint(problem_yaml: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("petablint")
    cmd = [exe] if exe else [sys.executable, "-m", "petab.petablint"]
    return subprocess.run([*cmd, str(problem_yaml)], capture_output=True, text=True, timeout=300)


def roadrunner_states(directory: Path, condition: str, times: np.ndarray) -> dict[str, np.ndarray]:
    """Simulate the exported SBML with libRoadRunner in one PEtab condition (condition table and nominal
    parameter values applied by hand), states at ``times`` (on the PEtab time axis)."""
    roadrunner = pytest.importorskip("roadrunner")
    problem = petab.Problem.from_yaml(directory / "problem.yaml")
    nominal = problem.parameter_df["nominalValue"].to_dict()
    rr = roadrunner.RoadRunner(str(directory / "model.xml"))
    rr.integrator.relative_tolerance = 1e-12
    rr.integrator.absolute_tolerance = 1e-14
    species = list(rr.model.getFloatingSpeciesIds())
    for pid, value in nominal.items():
        if pid in rr.model.getGlobalParameterIds():
            rr[pid] = float(value)
    row = problem.condition_df.loc[condition]
    for col, value in row.items():
        if col == "conditionName":
            continue
        value = float(nominal[value]) if isinstance(value, str) else float(value)
        if col in species:
            rr[f"init([{col}])"] = value
        else:
            rr[col] = value
    rr.reset()
    rr.timeCourseSelections = ["time", *[f"[{s}]" for s in species]]
    grid = np.asarray(times, dtype=float)
    res = rr.simulate(times=grid if grid[0] == 0 else np.concatenate([[0.0], grid]))
    res = np.asarray(res)[-len(grid):]
    return {s: res[:, k + 1] for k, s in enumerate(species)}


@pytest.mark.slow
def test_small_export_passes_petablint(small, tmp_path):
    spec, datasets = small
    out = export_petab(spec, datasets, tmp_path / "petab")
    r = _petablint(out.problem)
    assert r.returncode == 0, r.stdout + r.stderr
    problem = petab.Problem.from_yaml(out.problem)
    assert not petab.lint_problem(problem)
    assert out.conditions == ["c_exp1", "c_exp2"]
    assert out.n_measurements == len(problem.measurement_df) == 20 + 15  # 7 X + 7 S + 6 OD in exp1, 5 x 3 in exp2
    # estimated initial states are per-condition parameters; fixed ones numbers
    cond = problem.condition_df
    assert cond.loc["c_exp1", "S"] == "init_S_c_exp1" and cond.loc["c_exp2", "X"] == "init_X_c_exp2"
    assert float(cond.loc["c_exp1", "P"]) == 0.0
    par = problem.parameter_df
    assert par.loc["mu", "parameterScale"] == "log10" and par.loc["k", "parameterScale"] == "lin"
    assert (par.loc["mu", "lowerBound"], par.loc["mu", "upperBound"]) == (0.01, 10.0)
    assert par.loc["S0", "estimate"] == 0 and par.loc["mu", "estimate"] == 1
    assert set(out.estimated) == {"mu", "K", "k", "c", "init_S_c_exp1", "init_X_c_exp1", "init_S_c_exp2",
                                  "init_X_c_exp2"}
    # time shift: the second file starts at t = 2
    m = problem.measurement_df
    assert m[m.simulationConditionId == "c_exp2"]["time"].min() == 0.0
    assert float(cond.loc["c_exp2", "time_offset"]) == 2.0


@pytest.mark.slow
def test_export_simulates_like_symode(small, tmp_path):
    """libRoadRunner on the exported SBML reproduces symode's trajectories in both conditions (piecewise
    constant and linear inputs, chemostat dilution and feed, t in a rate law with a shifted start)."""
    spec, datasets = small
    out = export_petab(spec, datasets, tmp_path / "petab")
    model = build_model(spec)
    for cid, data in zip(out.conditions, datasets, strict=True):
        ref = simulate(model, data=data, rtol=1e-12, atol=1e-14)
        rr = roadrunner_states(out.directory, cid, data.times - data.times[0])
        for s in spec.states:
            scale = np.maximum(np.abs(ref[s]), 1e-3)
            assert np.max(np.abs(rr[s] - ref[s]) / scale) < 1e-7, (cid, s)
        # observable formulas (PEtab math) evaluated on symode's states give symode's observables
        problem = petab.Problem.from_yaml(out.problem)
        for o, oid in out.observables.items():
            expr = petab.math.sympify_petab(problem.observable_df.loc[oid, "observableFormula"])
            f = sp.lambdify([sp.Symbol(n, real=True) for n in [*spec.states, *spec.parameters]], expr)
            values = f(*[ref[s] for s in spec.states], *[spec.parameters[p].value for p in spec.parameters])
            np.testing.assert_allclose(values, ref[o], rtol=1e-14)


def test_inputs_exact_at_change_points(small, tmp_path):
    """D(t) in the SBML equals the data's value exactly from each change point on (also a value that needs
    17 digits), and the previous value just before it."""
    roadrunner = pytest.importorskip("roadrunner")
    spec, datasets = small
    out = export_petab(spec, datasets, tmp_path / "petab")
    problem = petab.Problem.from_yaml(out.problem)
    for cid, data in zip(out.conditions, datasets, strict=True):
        rr = roadrunner.RoadRunner(str(out.directory / "model.xml"))
        for c in out.conditions:
            rr[f"is_{c}"] = float(problem.condition_df.loc[cid, f"is_{c}"])
        times = data.times - data.times[0]
        D = data.columns["D"]
        for i, t in enumerate(times[:-1]):
            rr.reset()
            rr.simulate(0.0, float(t), 2) if t > 0 else None
            assert rr["D"] == D[i], (cid, t)
            if i > 0:
                rr.reset()
                rr.simulate(0.0, float(t) - 1e-9, 2)
                assert rr["D"] == D[i - 1], (cid, t)
    assert 0.30000000000000004 in datasets[1].columns["D"]


def test_linear_input_and_merged_pieces(small):
    """A constant input has one piece per change (repeated values merged); a linear one u_i + s_i (t - t_i)."""
    import libsbml

    spec, datasets = small
    doc = libsbml.readSBMLFromString(petab_files(spec, datasets[:1]).files["model.xml"])
    rule = doc.getModel().getAssignmentRuleByVariable("D")
    pw = rule.getMath()
    assert pw.getType() == libsbml.AST_FUNCTION_PIECEWISE
    assert pw.getNumChildren() == 2 * 3 + 1           # 0.1, 0.3, 0.05 pieces, 0.2 otherwise (0.15 unused)
    lin = doc.getModel().getAssignmentRuleByVariable("T").getMath()
    assert lin.getNumChildren() == 2 * 7 + 1 and "time" in libsbml.formulaToL3String(lin)


@pytest.mark.slow
def test_neural_spec_exports_and_simulates(shared_data, tmp_path):
    spec = load_spec(SPECS / "chemostat-neural.yaml")
    data = read_csv(shared_data / "chemostat-dev" / "data.csv").until(6)
    out = export_petab(spec, [data], tmp_path / "petab")
    assert _petablint(out.problem).returncode == 0
    ref = simulate(build_model(spec), data=data, rtol=1e-12, atol=1e-14)
    rr = roadrunner_states(out.directory, out.conditions[0], data.times)
    for s in spec.states:
        assert np.max(np.abs(rr[s] - ref[s]) / np.maximum(np.abs(ref[s]), 1e-3)) < 1e-7, s


@pytest.mark.slow
def test_chemostat_dev_window_reproduces_hidden_states(shared_data, tmp_path):
    """The export of specs/chemostat.yaml with a day of chemostat-dev at the true parameters passes
    petablint, and libRoadRunner reproduces the data set's hidden states (printed with 9 digits)."""
    dev = shared_data / "chemostat-dev"
    out_dir = tmp_path / "chemostat-petab"
    rc = main(["petab", "export", str(SPECS / "chemostat.yaml"), "--data", str(dev / "data.csv"),
               "--params", str(dev / "truth.json"), "--t-end", "24", "-o", str(out_dir)])
    assert rc == 0
    r = _petablint(out_dir / "problem.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    truth = np.genfromtxt(dev / "truth_states.csv", delimiter=",", names=True)
    n = int(np.searchsorted(truth["time_h"], 24.0, side="right"))
    rr = roadrunner_states(out_dir, "c_data", truth["time_h"][:n])
    for s in "SXYAB":
        assert np.max(np.abs(rr[s] - truth[s][:n]) / np.abs(truth[s][:n])) < 1e-6, s


def test_noise_at_data_reproduces_symode_loss(small, tmp_path):
    """With noise='data' the PEtab log-likelihood of symode's own simulation is -(symode's loss) minus the
    Gaussian normalisation sum(log(sqrt(2 pi) sigma))."""
    from symode.solve.sensitivity import Problem, loss

    spec, datasets = small
    out = export_petab(spec, datasets[:1], tmp_path / "petab", noise="data")
    problem = petab.Problem.from_yaml(out.problem)
    model = build_model(spec)
    ref = simulate(model, data=datasets[0], rtol=1e-12, atol=1e-14)
    sim = problem.measurement_df.copy()
    inverse = {v: k for k, v in out.observables.items()}
    row_of = {float(t): i for i, t in enumerate(datasets[0].times)}
    sim["simulation"] = [ref[inverse[o]][row_of[float(t)]] for o, t in zip(sim.observableId, sim.time, strict=True)]
    llh = petab.calculate_llh(problem.measurement_df, sim.rename(columns={"measurement": "_m"}).rename(
        columns={"simulation": "simulation"}), problem.observable_df, problem.parameter_df)
    sigma = problem.measurement_df["noiseParameters"].astype(float).to_numpy()
    expected = -loss(Problem(model, datasets[0]), rtol=1e-12, atol=1e-14) - np.sum(np.log(np.sqrt(2 * np.pi) * sigma))
    assert llh == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_atomic_write(small, tmp_path, monkeypatch):
    spec, datasets = small
    target = tmp_path / "out"
    export_petab(spec, datasets, target)
    first = (target / "measurements.tsv").read_text()
    assert (target / "problem.yaml").read_text().startswith(MARKER)
    # a failure while writing leaves the previous export untouched and no temporary directory behind
    calls = {"n": 0}
    real = Path.write_text

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError):
        export_petab(spec, datasets[:1], target)
    monkeypatch.undo()
    assert (target / "measurements.tsv").read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "small.yaml", "exp1.csv", "exp2.csv"])
    # a previous export is replaced; an unrelated directory is refused
    export_petab(spec, datasets[:1], target)
    assert (target / "measurements.tsv").read_text() != first
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(SymodeError, match="does not hold a previous"):
        export_petab(spec, datasets, other)
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("case", ["no_input_column", "no_observables", "bad_params", "missing_file", "empty"])
def test_bad_input_exits_2_one_line(tmp_path, capsys, case):
    spec = SPECS / "chemostat.yaml"
    data = tmp_path / "d.csv"
    data.write_text("time_h,D,X,S\n0,0.25,1,2\n1,0.25,1,2\n")
    args = ["petab", "export", str(spec), "--data", str(data), "-o", str(tmp_path / "out")]
    if case == "no_input_column":
        data.write_text("time_h,X,S\n0,1,2\n1,1,2\n")
        needle = "missing input column 'D'"
    elif case == "no_observables":
        bare = tmp_path / "bare.yaml"
        bare.write_text("name: bare\nstates:\n  S: {x0: 1}\nparameters:\n  k: 0.1\n")
        args[2] = str(bare)
        data.write_text("time_h\n0\n1\n")
        needle = "no observables"
    elif case == "bad_params":
        params = tmp_path / "p.json"
        params.write_text('{"parameters": {"nope": 1.0}}')
        args += ["--params", str(params)]
        needle = "unknown"
    elif case == "missing_file":
        args[4] = str(tmp_path / "missing.csv")
        needle = "file not found"
    else:
        data.write_text("time_h,D,X,S\n0,0.25,,\n1,0.25,,\n")
        needle = "no observable values"
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("symode: error:") and needle in err[0], err
    assert not (tmp_path / "out").exists()


def test_math_printers():
    """PEtab math text parses back (petab's own parser) to the same values; unsupported nodes are refused."""
    x, y, z = sp.symbols("x y z", real=True)
    names = {x: "x", y: "y", z: "z"}
    exprs = [x - y, -x * y / z, x ** 2.5 / (1 + y), -(x ** 2), sp.exp(-x) * sp.log(y), sp.sqrt(x + y),
             sp.Max(x, y, z), sp.Min(x, 0.5), sp.Abs(x - 3) * sp.tanh(y), 1 / (x * y), x ** -2,
             sp.Rational(1, 3) * x, sp.Float(0.1) + sp.Float(0.2) * x, sp.sin(x) + sp.cos(y) ** 2]
    point = {x: 1.7, y: 0.3, z: -2.2}
    for e in exprs:
        text = petab_formula(e, names)
        back = petab.math.sympify_petab(text)
        back = back.subs({sp.Symbol(k.name, real=True): v for k, v in point.items()})
        assert float(back) == pytest.approx(float(e.subs(point)), rel=1e-14), text
    with pytest.raises(SpecError, match="cannot export"):
        SbmlMath(names)(sp.gamma(x))
    with pytest.raises(SpecError, match="cannot export"):
        petab_formula(sp.gamma(x), names)
    with pytest.raises(SpecError, match="not a state"):
        SbmlMath({x: "x"})(x + y)


def _symode_simulation_column(spec, datasets, out, measurement_df) -> np.ndarray:
    """symode's observable values at every row of the exported measurement table."""
    model = build_model(spec)
    inverse = {v: k for k, v in out.observables.items()}
    values = np.full(len(measurement_df), np.nan)
    for cid, data in zip(out.conditions, datasets, strict=True):
        traj = simulate(model, data=data, rtol=1e-12, atol=1e-14)
        times = data.times - data.times[0]
        for r in np.flatnonzero(measurement_df["simulationConditionId"].to_numpy() == cid):
            i = int(np.flatnonzero(times == measurement_df["time"].iloc[r])[0])
            values[r] = traj[inverse[measurement_df["observableId"].iloc[r]]][i]
    return values


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "min_max"])
def test_round_trip_through_import(small, tmp_path, variant):
    """spec -> PEtab -> symode's PEtab import -> the same observables at every measurement (both conditions:
    piecewise-constant and linear inputs, a shifted start, estimated initial states). ``min_max`` keeps the
    spec's min/max terms, which the export writes as piecewise functions."""
    from symode.petab.objective import PetabObjective

    spec, datasets = small
    if variant == "plain":
        text = SMALL.replace(" * max(T, 0.5)", "").replace(" + 0.002 * min(T, 1.5, 3 - T)", "")
        assert "max(" not in text and "min(" not in text
        spec = loads_spec(text)
    out = export_petab(spec, datasets, tmp_path / "petab", finite_bounds=1e3)
    obj = PetabObjective.from_yaml(out.problem)
    ev = obj.evaluate()
    problem = petab.Problem.from_yaml(out.problem)
    expected = _symode_simulation_column(spec, datasets, out, problem.measurement_df)
    np.testing.assert_allclose(ev.simulation, expected, rtol=1e-6, atol=1e-9)


def test_spec_text_never_reaches_formulas(tmp_path):
    """Names and descriptions are free text only where SBML/TSV allow text; formulas are built from the
    symbolic model (a description full of formula syntax changes nothing in the math)."""
    text = SMALL.replace("name: small export test", "name: 'x) + exp(1e9'").replace(
        "  K: 0.5", "  K: {value: 0.5, description: \"piecewise(1e308, true, 0)\\t\"}")
    spec = loads_spec(text)
    (tmp_path / "d.csv").write_text(DATA1)
    files = petab_files(spec, [read_csv(tmp_path / "d.csv")]).files
    assert "1e308" not in "".join(files.values()) and "1e9" not in files["observables.tsv"]
    assert math.isfinite(float(files["parameters.tsv"].splitlines()[1].split("\t")[4]))


def test_params_file_sets_nominal_values(tmp_path):
    spec = load_spec(SPECS / "chemostat.yaml")
    params = tmp_path / "p.json"
    params.write_text('{"parameters": {"gA": 0.125}, "x0": {"Y": 0.75}}')
    spec = apply_params(spec, params)
    (tmp_path / "d.csv").write_text("time_h,D,X,S\n0,0.25,20,5\n1,0.25,21,6\n")
    files = petab_files(spec, [read_csv(tmp_path / "d.csv")]).files
    rows = {r.split("\t")[0]: r.split("\t") for r in files["parameters.tsv"].splitlines()}
    assert rows["gA"][4] == "0.125" and rows["init_Y"][4] == "0.75"
