"""The command line: every subcommand, its --help, and user errors (exit 2, one located line)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from symode.cli.main import COMMAND_MODULES, build_parser, main
from symode.spec import load_spec

from .conftest import SPECS

COMMANDS = {"validate", "graph", "template", "simulate", "gradcheck", "codegen", "fit", "profile", "train", "design",
            "discover", "example", "demo"}


def run(*args: str, module: str = "symode.cli", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=1800,
                          cwd=cwd)


def _subparsers(parser):
    return next(a for a in parser._actions if a.dest == "command").choices


def test_every_subcommand_has_help():
    sub = _subparsers(build_parser())
    assert set(sub) >= COMMANDS
    for name, p in sub.items():
        text = p.format_help()
        assert p.description, name
        for action in p._actions:
            if action.dest != "help":
                assert action.help, (name, action.dest)
        assert "usage" in text


def test_help_names_no_private_documents():
    """Help texts are self-contained: no pointers to files or notes a user of the package does not have."""
    parser = build_parser()
    texts = [parser.format_help(), *(p.format_help() for p in _subparsers(parser).values())]
    for text in texts:
        for needle in ("MISSION", "../shared", "issue ", "original author"):
            assert needle not in text


def test_command_families_register_their_commands():
    """Each family module adds its commands through register(subparsers); main only collects them."""
    import argparse
    import importlib

    seen: set[str] = set()
    for name in COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command")
        importlib.import_module(name).register(sub)
        assert sub.choices, name
        assert not seen & set(sub.choices), name
        seen |= set(sub.choices)
    assert seen == set(_subparsers(build_parser()))


def test_version_and_python_m_symode(tmp_path):
    import symode

    r = run("--version", module="symode", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"symode {symode.__version__}"
    r = run("template", "-n", "1", "-m", "1", module="symode", cwd=tmp_path)
    assert r.returncode == 0 and "symode: 1" in r.stdout
    r = run("example", module="symode", cwd=tmp_path)
    assert r.returncode == 2 and "--list" in r.stderr and "Traceback" not in r.stderr


def test_validate_and_equations(capsys):
    assert main(["validate", str(SPECS / "chemostat.yaml"), "--equations"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "dB/dt" in out


def test_template_writes_loadable_spec(tmp_path):
    out = tmp_path / "t.yaml"
    assert main(["template", "--satellites", "3", "--metabolites", "2", "-o", str(out)]) == 0
    spec = load_spec(out)
    assert [s for s in spec.states] == ["S", "X", "Y1", "Y2", "Y3", "M1", "M2"]
    header = [line for line in out.read_text().splitlines() if line.startswith("#")]
    assert header and "symode template --satellites 3 --metabolites 2" in header[-1]
    assert not any("MISSION" in line or "issue" in line for line in header)


def test_graph_png(tmp_path):
    out = tmp_path / "g.png"
    assert main(["graph", str(SPECS / "chemostat.yaml"), "-o", str(out), "--strengths"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_simulate_without_data(tmp_path):
    out = tmp_path / "traj.csv"
    assert main(["simulate", str(SPECS / "chemostat.yaml"), "--t-end", "24", "--dt", "0.5", "-o", str(out),
                 "--plot", str(tmp_path / "traj.png")]) == 0
    rows = np.genfromtxt(out, delimiter=",", names=True)
    assert rows.dtype.names == ("time", "S", "X", "Y", "A", "B")
    assert len(rows) == 49 and rows["time"][-1] == 24.0
    assert (tmp_path / "traj.png").exists()


def test_simulate_with_data_reproduces_truth(tmp_path, shared_data):
    """The hidden states of the reference data set (computed by an independent code) from its data and
    true parameters, through the command line."""
    out = tmp_path / "traj.csv"
    r = run("simulate", str(SPECS / "chemostat.yaml"), "--data", str(shared_data / "chemostat-dev" / "data.csv"),
            "--params", str(shared_data / "chemostat-dev" / "truth.json"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    traj = np.genfromtxt(out, delimiter=",", names=True)
    truth = np.genfromtxt(shared_data / "chemostat-dev" / "truth_states.csv", delimiter=",", names=True)
    assert traj.dtype.names == truth.dtype.names
    for name in ("S", "X", "Y", "A", "B"):
        assert np.max(np.abs(traj[name] / truth[name] - 1)) <= 1e-5


@pytest.mark.parametrize("name", ["chemostat", "chemostat-hplc", "community"])
def test_simulate_example_reproduces_its_hidden_states(tmp_path, example_data, name):
    """`symode simulate DIR/spec.yaml --data DIR/data.csv --params DIR/truth.json` (the README's example)
    gives the example's hidden states (written at tolerances 100x tighter than simulate's default)."""
    d = example_data / name
    out = tmp_path / "traj.csv"
    assert main(["simulate", str(d / "spec.yaml"), "--data", str(d / "data.csv"), "--params", str(d / "truth.json"),
                 "-o", str(out)]) == 0
    traj = np.genfromtxt(out, delimiter=",", names=True)
    truth = np.genfromtxt(d / "truth_states.csv", delimiter=",", names=True)
    assert traj.dtype.names == truth.dtype.names and len(traj) == len(truth)
    for state in truth.dtype.names[1:]:
        assert np.max(np.abs(traj[state] - truth[state]) / np.abs(truth[state])) <= 1e-5, state


BAD_SPECS = {
    "yaml": ("name: x\nstates:\n  S: {x0: 1\n", ":4:"),
    "unknown_symbol": ("name: x\nstates:\n  S: {x0: 1}\nparameters:\n  k: {value: 1}\ninteractions:\n"
                       "  - {id: r, type: custom, rate: 'k*Q', stoichiometry: {S: -1}}\n", ":7:"),
    "undefined_species": ("name: x\nstates:\n  S: {x0: 1}\nparameters:\n  k: {value: 1}\ninteractions:\n"
                          "  - {type: uptake, from: S, to: Z, mu: k, K: k, yield: k}\n", ":7:"),
    "bounds": ("name: x\nstates:\n  S: {x0: 1}\nparameters:\n  k: {value: 5, bounds: [0, 1]}\n", ":5:"),
    "code": ("name: x\nstates:\n  S: {x0: 1}\nparameters:\n  k: {value: 1}\ninteractions:\n"
             "  - {id: r, type: custom, rate: \"__import__('os').system('touch PWNED')\", stoichiometry: {S: -1}}\n",
             ":7:"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_exits_2_with_location(tmp_path, case):
    text, where = BAD_SPECS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "symode.cli", "validate", str(path)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=600)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) + where in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("content,needle", [
    ("time_h,D,X,S\n0,0.25,1,2\n1,nan,1,2\n2,0.25,1,2\n", ":3: D: missing or NaN input"),
    ("time_h,X,S\n0,1,2\n1,1,2\n", "missing input column 'D'"),
    ("time_h,D,X,S\n0,0.25,1,2\n2,0.25,1,2\n1,0.25,1,2\n", ":4: time_h: unsorted"),
    ("X,S\n1,2\n", "no time column"),
])
def test_bad_data_exits_2(tmp_path, content, needle):
    data = tmp_path / "d.csv"
    data.write_text(content)
    r = run("simulate", str(SPECS / "chemostat.yaml"), "--data", str(data), "-o", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.csv").exists()


def test_solver_failure_exits_2(tmp_path):
    spec = tmp_path / "blowup.yaml"
    spec.write_text("name: b\nreactor: {mode: batch}\nstates: {x: {x0: 1.0}}\nparameters: {k: {value: 1.0}}\n"
                    "interactions:\n  - {type: mass_action, reactants: {x: 2}, products: {x: 3}, k: k}\n")
    r = run("simulate", str(spec), "--t-end", "5", "-o", str(tmp_path / "o.csv"))
    assert r.returncode == 2 and "solver failed" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_discover_two_experiments_and_bad_data(tmp_path, capsys):
    """`symode discover` with two --data files (the tiny 1x2 template, 3 days each) keeps the true edges;
    a data file without a needed column is a located one-line error with exit code 2."""
    import json

    from symode.discover import synthetic_case
    from symode.solve.synth import dataset_to_csv_text

    true = {"prod:X->M1": {"v": 0.002}, "inhib:M1-|X": {"kappa": 0.5},
            "uptake:M1->Y1": {"mu": 0.8, "K": 0.1, "g": 1.5}, "prod:Y1->M2": {"u": 0.1}}
    files = []
    for seed in (3, 4):
        spec, data, _ = synthetic_case(1, 2, true, days=3, seed=seed, metabolite_every=4)
        files.append(tmp_path / f"exp{seed}.csv")
        files[-1].write_text(dataset_to_csv_text(data))
    spec_file = tmp_path / "t.yaml"
    spec_file.write_text(spec.to_yaml())
    out = tmp_path / "out"
    assert main(["discover", str(spec_file), "--data", str(files[0]), "--data", str(files[1]), "-o", str(out),
                 "-q", "--workers", "1"]) == 0
    d = json.loads((out / "discovery.json").read_text())
    assert sorted(d["kept_edges"]) == sorted(true)
    bad = tmp_path / "bad.csv"
    lines = files[0].read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h != "M1"]
    bad.write_text("\n".join(",".join(row.split(",")[i] for i in keep) for row in lines) + "\n")
    capsys.readouterr()
    assert main(["discover", str(spec_file), "--data", str(bad), "-o", str(tmp_path / "o2"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv" in err[0] and "M1" in err[0]
