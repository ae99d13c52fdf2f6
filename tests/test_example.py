"""The example data sets (`symode example`) and the shipped specs they come from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from symode.cli.main import main
from symode.examples import spec_names, spec_path
from symode.examples.datasets import EXAMPLES, make_example, write_example
from symode.spec import load_spec
from symode.spec.params import apply_params

from .conftest import EXAMPLES as FIXTURE_EXAMPLES

REFERENCE = {"chemostat": "chemostat-dev", "chemostat-hplc": "chemostat-dev-hplc", "community": "community-dev"}


def test_shipped_specs_load_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # found in the package, not relative to the working directory
    assert {"chemostat", "chemostat-hplc", "chemostat-neural", "community-2x3", "spiral-neural"} <= set(spec_names())
    for name in spec_names():
        assert load_spec(spec_path(name)).name == name
    assert spec_path("chemostat.yaml") == spec_path("chemostat")


def test_fixture_covers_every_example():
    assert set(FIXTURE_EXAMPLES) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_files(example_data, name):
    d = example_data / name
    spec = load_spec(d / "spec.yaml")
    truth = json.loads((d / "truth.json").read_text())
    data = np.genfromtxt(d / "data.csv", delimiter=",", names=True)
    states = np.genfromtxt(d / "truth_states.csv", delimiter=",", names=True)
    assert data.dtype.names == ("time_h", "D", *spec.observables)
    assert states.dtype.names == ("time_h", *spec.states)
    np.testing.assert_array_equal(data["time_h"], states["time_h"])
    np.testing.assert_allclose(np.diff(data["time_h"]), 0.25)
    assert data["time_h"][-1] == pytest.approx(truth["days"] * 24)
    assert np.all((data["D"] > 0.05) & (data["D"] < 0.3)) and abs(np.mean(data["D"]) - 0.25) < 0.01
    # truth.json is a params file for the spec: every estimated parameter, every state's x0
    assert set(truth["parameters"]) == set(spec.estimated_parameters)
    assert set(truth["x0"]) == set(spec.states)
    applied = apply_params(spec, d / "truth.json")
    assert {n: applied.parameters[n].value for n in truth["parameters"]} == truth["parameters"]
    for obs, noise in truth["noise"].items():
        col = data[obs]
        every = noise["every_n_rows"]
        assert np.all(np.isfinite(col[::every])) and (every == 1 or np.all(np.isnan(col[1::every])))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_noise_follows_the_spec(example_data, name):
    """(data - hidden state) / sigma with sigma^2 = absolute^2 + (relative * state)^2 is standard normal."""
    d = example_data / name
    spec = load_spec(d / "spec.yaml")
    data = np.genfromtxt(d / "data.csv", delimiter=",", names=True)
    states = np.genfromtxt(d / "truth_states.csv", delimiter=",", names=True)
    for obs, o in spec.observables.items():
        keep = np.isfinite(data[obs])
        y = states[obs][keep]
        z = (data[obs][keep] - y) / np.sqrt(o.noise.absolute**2 + (o.noise.relative * y) ** 2)
        n = z.size
        assert abs(z.mean()) < 4 / np.sqrt(n) and abs(z.std() - 1) < 4 / np.sqrt(2 * n), (obs, z.mean(), z.std())


def test_example_is_deterministic_and_days_is_a_prefix(tmp_path):
    a = write_example("chemostat", tmp_path / "a")
    b = write_example("chemostat", tmp_path / "b")
    for kind in a:
        assert a[kind].read_bytes() == b[kind].read_bytes(), kind
    short = make_example("chemostat", days=2)
    full = make_example("chemostat")
    n = len(short.data.times)
    assert short.data.times[-1] == 48.0 and short.truth["days"] == 2
    for col in full.data.columns:
        np.testing.assert_array_equal(short.data.columns[col], full.data.columns[col][:n])
    np.testing.assert_array_equal(short.states.x, full.states.x[:n])


def test_examples_differ_in_noise_and_seed():
    chemo, hplc = make_example("chemostat", days=1), make_example("chemostat-hplc", days=1)
    assert chemo.truth["parameters"] == hplc.truth["parameters"] and chemo.truth["seed"] != hplc.truth["seed"]
    assert not np.array_equal(chemo.data.columns["X"], hplc.data.columns["X"])


def test_community_truth_lists_its_edges_and_template_parameters(example_data):
    truth = json.loads((example_data / "community" / "truth.json").read_text())
    spec = load_spec(example_data / "community" / "spec.yaml")
    assert truth["satellites"] == 2 and truth["metabolites"] == 3
    prunable = {e.id: e for e in spec.interactions if e.prunable}
    assert set(truth["edges"]) < set(prunable)
    for edge_id, e in prunable.items():  # absent edges have strength 0, present ones a positive strength
        strength = truth["parameters"][str(e.strength)]
        assert (strength > 0) == (edge_id in truth["edges"]), edge_id


def test_example_cli(tmp_path, capsys):
    assert main(["example", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in EXAMPLES)
    assert main(["example", "chemostat", "--days", "1", "-o", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["data.csv", "spec.yaml", "truth.json",
                                                                 "truth_states.csv"]
    assert "symode simulate" in capsys.readouterr().err
    assert main(["example", "chemostat", "--days", "200", "-o", str(tmp_path / "e")]) == 2
    assert main(["example", "chemostat"]) == 2
    assert not (tmp_path / "e").exists()


def test_example_matches_reference_format(example_data, shared_data):
    """The example data sets have the columns and truth.json keys of the reference data sets they imitate."""
    for name, ref in REFERENCE.items():
        for file in ("data.csv", "truth_states.csv"):
            ours = (example_data / name / file).read_text().splitlines()[0]
            theirs = (shared_data / ref / file).read_text().splitlines()[0]
            assert ours == theirs, (name, file)
        ours = json.loads((example_data / name / "truth.json").read_text())
        theirs = json.loads((shared_data / ref / "truth.json").read_text())
        assert set(theirs) <= set(ours), (name, set(theirs) - set(ours))
        assert set(ours["x0"]) == set(theirs["x0"]) and ours["constants"] == theirs["constants"]
