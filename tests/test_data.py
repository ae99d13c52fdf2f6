"""Tests of data CSV reading/checking (symode.spec.data) and params files (symode.spec.params)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from symode.errors import DataError, SpecError
from symode.spec import load_spec, loads_spec
from symode.spec.data import check_columns, input_matrix, read_csv
from symode.spec.params import apply_params, load_params

ROOT = Path(__file__).resolve().parents[1]
CHEMOSTAT = ROOT / "specs" / "chemostat.yaml"


@pytest.fixture(scope="module")
def spec():
    return load_spec(CHEMOSTAT)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def located(err: DataError, path: Path, line: int | None, field: str | None = None) -> None:
    msg = str(err)
    assert err.file == str(path), msg
    if line is not None:
        assert err.line == line, msg
        assert msg.startswith(f"{path}:{line}: "), msg
    else:
        assert msg.startswith(f"{path}"), msg
    if field is not None:
        assert err.field == field, msg
        assert f"{field}: " in msg, msg


# -- read_csv ------------------------------------------------------------------------------------------
def test_read_basic_blank_cells_are_nan(tmp_path) -> None:
    p = write(tmp_path, "# comment\ntime_h, D, X, S\n0, 0.25, 20, 5\n\n0.25, 0.25, , 6\n0.5,0.3,21,NA\n")
    ds = read_csv(p)
    assert ds.time_column == "time_h"
    assert ds.times.tolist() == [0.0, 0.25, 0.5]
    assert list(ds.columns) == ["D", "X", "S"]
    assert math.isnan(ds.columns["X"][1]) and ds.columns["X"][2] == 21.0
    assert math.isnan(ds.columns["S"][2])
    assert ds.lines.tolist() == [3, 5, 6]
    assert ds.line_of(1) == 5


def test_short_row_is_missing_values(tmp_path) -> None:
    ds = read_csv(write(tmp_path, "t,X,S\n0,1,2\n1,3\n"))
    assert ds.time_column == "t"
    assert math.isnan(ds.columns["S"][1])


@pytest.mark.parametrize("tcol", ["time", "time_h", "t"])
def test_time_column_names(tmp_path, tcol: str) -> None:
    assert read_csv(write(tmp_path, f"{tcol},X\n0,1\n1,2\n")).time_column == tcol


def test_missing_time_column(tmp_path) -> None:
    p = write(tmp_path, "# header follows\nhours,X\n0,1\n")
    with pytest.raises(DataError) as info:
        read_csv(p)
    located(info.value, p, 2)
    assert "time" in str(info.value)


def test_unsorted_times(tmp_path) -> None:
    p = write(tmp_path, "time,X\n0,1\n2,1\n1,1\n3,1\n")
    with pytest.raises(DataError, match="unsorted") as info:
        read_csv(p)
    located(info.value, p, 4, "time")


def test_duplicate_times(tmp_path) -> None:
    p = write(tmp_path, "time,X\n0,1\n1,1\n1,2\n")
    with pytest.raises(DataError, match="duplicate") as info:
        read_csv(p)
    located(info.value, p, 4, "time")


def test_negative_time(tmp_path) -> None:
    p = write(tmp_path, "time,X\n-1,1\n1,1\n")
    with pytest.raises(DataError, match="negative") as info:
        read_csv(p)
    located(info.value, p, 2, "time")


def test_missing_time_value(tmp_path) -> None:
    p = write(tmp_path, "time,X\n0,1\n,1\n")
    with pytest.raises(DataError, match="missing time") as info:
        read_csv(p)
    located(info.value, p, 3, "time")


@pytest.mark.parametrize("cell", ["abc", "1,5".replace(",", ";"), "0x10", "--1"])
def test_non_numeric_cell(tmp_path, cell: str) -> None:
    p = write(tmp_path, f"time,D,X\n0,0.2,1\n1,0.2,{cell}\n")
    with pytest.raises(DataError, match="not a number") as info:
        read_csv(p)
    located(info.value, p, 3, "X")


def test_infinite_cell(tmp_path) -> None:
    p = write(tmp_path, "time,X\n0,inf\n")
    with pytest.raises(DataError, match="infinite") as info:
        read_csv(p)
    located(info.value, p, 2, "X")


def test_too_many_cells_and_duplicate_columns(tmp_path) -> None:
    p = write(tmp_path, "time,X\n0,1,2\n")
    with pytest.raises(DataError) as info:
        read_csv(p)
    located(info.value, p, 2)
    p = write(tmp_path, "time,X,X\n0,1,2\n", "dup.csv")
    with pytest.raises(DataError, match="duplicate column") as info:
        read_csv(p)
    located(info.value, p, 1)


def test_empty_and_missing_files(tmp_path) -> None:
    for text in ("", "# only a comment\n\n", "time,X\n"):
        p = write(tmp_path, text)
        with pytest.raises(DataError) as info:
            read_csv(p)
        assert str(p) in str(info.value)
    with pytest.raises(DataError, match="not found"):
        read_csv(tmp_path / "nope.csv")


# -- input_matrix / check_columns ------------------------------------------------------------------------
def test_input_matrix_values_and_default(tmp_path, spec) -> None:
    ds = read_csv(write(tmp_path, "time,D,X,S\n0,0.2,1,1\n1,0.3,1,1\n2,,1,1\n"))
    u = input_matrix(spec, ds, ds.times)
    assert u["D"][:2].tolist() == [0.2, 0.3]  # last value unused by piecewise-constant inputs
    ds2 = read_csv(write(tmp_path, "time,X,S\n0,1,1\n1,1,1\n", "nod.csv"))
    with pytest.raises(DataError, match="missing input column 'D'"):
        input_matrix(spec, ds2, ds2.times)  # a data file must carry its inputs; defaults are for data-free runs
    assert input_matrix(spec, None, np.array([0.0, 1.0]))["D"].tolist() == [0.25, 0.25]


def test_nan_in_input(tmp_path, spec) -> None:
    p = write(tmp_path, "time,D,X,S\n0,0.2,1,1\n1,,1,1\n2,0.3,1,1\n")
    ds = read_csv(p)
    with pytest.raises(DataError, match="NaN input") as info:
        input_matrix(spec, ds, ds.times)
    located(info.value, p, 3, "D")


def test_nan_in_last_row_of_linear_input(tmp_path, spec) -> None:
    lin = spec.copy()
    lin.inputs["D"].interpolation = "linear"
    p = write(tmp_path, "time,D,X,S\n0,0.2,1,1\n1,0.2,1,1\n2,,1,1\n")
    ds = read_csv(p)
    with pytest.raises(DataError) as info:
        input_matrix(lin, ds, ds.times)
    located(info.value, p, 4, "D")


def test_missing_input_without_default(tmp_path, spec) -> None:
    nodef = spec.copy()
    nodef.inputs["D"].default = None
    p = write(tmp_path, "time,X,S\n0,1,1\n")
    ds = read_csv(p)
    with pytest.raises(DataError, match="missing input column 'D'") as info:
        input_matrix(nodef, ds, ds.times)
    assert info.value.file == str(p) and info.value.field == "D"


def test_missing_observable_column(tmp_path, spec) -> None:
    p = write(tmp_path, "time,D,X\n0,0.2,1\n")
    ds = read_csv(p)
    check_columns(spec, ds, need_observables=False)  # fine for simulation
    with pytest.raises(DataError, match="missing observable column") as info:
        check_columns(spec, ds, need_observables=True)
    assert info.value.file == str(p) and str(info.value).startswith(str(p))
    assert "S" in str(info.value)


def test_negative_observable_below_noise_floor(tmp_path, spec) -> None:
    p = write(tmp_path, "time,D,X,S\n0,0.2,1,1\n1,0.2,-0.03,1\n2,0.2,-1,1\n")
    ds = read_csv(p)
    with pytest.raises(DataError, match="negative") as info:
        check_columns(spec, ds, need_observables=True)
    located(info.value, p, 4, "X")


def test_extra_columns_warn(tmp_path, spec) -> None:
    ds = read_csv(write(tmp_path, "time,D,X,S,OD600,Y\n0,0.2,1,1,3,4\n"))
    with pytest.warns(UserWarning) as record:
        check_columns(spec, ds, need_observables=True)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and all("\n" not in m for m in messages)
    nothing = next(m for m in messages if "OD600" in m)
    assert "Y" not in nothing.split(":")[-1]              # Y is a state: reported separately
    state = next(m for m in messages if "Y" in m and "OD600" not in m)
    assert state.startswith(f"{ds.file}: ") and "not" in state and "observables:" in state


def test_state_columns_that_are_not_observables_warn_with_a_fix(tmp_path, spec) -> None:
    ds = read_csv(write(tmp_path, "time,D,X,S,A,B\n0,0.2,1,1,3,4\n"))
    for need in (False, True):
        with pytest.warns(UserWarning, match=r"column\(s\) A, B: .*observables") as record:
            check_columns(spec, ds, need_observables=need)
        assert len(record) == 1
    observed = loads_spec(CHEMOSTAT.read_text().replace(
        "  S: {noise:", "  A: {noise: {absolute: 0.01}}\n  B: {noise: {absolute: 0.01}}\n  S: {noise:"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_columns(observed, ds, need_observables=True)    # once observed, no warning


def test_negative_observable_warns_when_not_fitting(tmp_path, spec) -> None:
    p = write(tmp_path, "time,D,X,S\n0,0.2,1,1\n1,0.2,-0.03,1\n2,0.2,-1,1\n")
    with pytest.warns(UserWarning, match="negative value -1 ") as record:
        check_columns(spec, read_csv(p), need_observables=False)
    assert str(record[0].message).startswith(f"{p}:4: X: ")


def test_negative_observable_with_relative_noise_only(tmp_path) -> None:
    rel = loads_spec(CHEMOSTAT.read_text().replace("X: {noise: {relative: 0.02, absolute: 0.01}",
                                                   "X: {noise: {relative: 0.02}"))
    p = write(tmp_path, "time,D,X,S\n0,0.2,1,1\n1,0.2,-0.001,1\n")
    with pytest.raises(DataError, match=r"noise\.absolute 0") as info:
        check_columns(rel, read_csv(p), need_observables=True)
    located(info.value, p, 3, "X")


def test_negative_dilution_rate_is_an_error(tmp_path, spec) -> None:
    p = write(tmp_path, "time,D,X,S\n0,0.2,1,1\n1,-0.1,1,1\n2,0.2,1,1\n")
    ds = read_csv(p)
    with pytest.raises(DataError, match=r"negative dilution rate -0\.1") as info:
        input_matrix(spec, ds, ds.times)
    located(info.value, p, 3, "D")
    assert "bounds" in str(info.value)


def test_input_bounds(tmp_path, spec) -> None:
    text = CHEMOSTAT.read_text()
    wide = loads_spec(text.replace("D: {interpolation: constant,", "D: {bounds: [-1, 1], interpolation: constant,"))
    assert wide.inputs["D"].lower == -1 and wide.input_bounds("D") == (-1, 1)
    assert spec.input_bounds("D") == (0.0, None)                # the dilution: implied lower bound 0
    assert loads_spec(wide.to_yaml()) == wide
    p = write(tmp_path, "time,D,X,S\n0,-0.5,1,1\n1,2,1,1\n2,0.2,1,1\n")
    ds = read_csv(p)
    with pytest.raises(DataError, match="above the upper bound 1 of input D") as info:
        input_matrix(wide, ds, ds.times)                       # -0.5 is allowed, 2 is not
    located(info.value, p, 3, "D")
    with pytest.raises(SpecError, match="outside bounds") as err:
        loads_spec(text.replace("D: {interpolation: constant,", "D: {bounds: [0.5, 1], interpolation: constant,"),
                   "s.yaml")
    assert err.value.field == "inputs.D.default"
    with pytest.raises(SpecError, match="negative dilution rate") as err:
        loads_spec(text.replace("default: 0.25", "default: -0.25"), "s.yaml")
    assert err.value.field == "inputs.D.default"


# -- limits on data files -----------------------------------------------------------------------------
def test_csv_binary_and_non_utf8(tmp_path) -> None:
    p = tmp_path / "nul.csv"
    p.write_bytes(b"time,X\n0,1\n1,\x002\n")
    with pytest.raises(DataError, match="NUL") as info:
        read_csv(p)
    located(info.value, p, 3)
    q = tmp_path / "latin1.csv"
    q.write_bytes("time,X\n0,1\n# Zürich\n1,2\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as info:
        read_csv(q)
    located(info.value, q, 3)
    r = tmp_path / "escape.csv"
    r.write_text("time,X\x1b[31m\n0,1\n")
    with pytest.raises(DataError, match="control character U\\+001B") as info:
        read_csv(r)
    located(info.value, r, 1)


def test_csv_size_and_shape_limits(tmp_path) -> None:
    from symode.spec.limits import MAX_CSV_BYTES, MAX_CSV_COLUMNS

    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        fh.write(b"time,X\n0,1\n")
        fh.truncate(MAX_CSV_BYTES + 1)
    with pytest.raises(DataError, match="larger than the limit") as info:
        read_csv(big)
    located(info.value, big, None)
    wide = write(tmp_path, "time," + ",".join(f"c{i}" for i in range(MAX_CSV_COLUMNS)) + "\n0\n", "wide.csv")
    with pytest.raises(DataError, match="columns; the limit") as info:
        read_csv(wide)
    located(info.value, wide, 1)


def test_no_warning_when_columns_match(tmp_path, spec) -> None:
    ds = read_csv(write(tmp_path, "time,D,X,S\n0,0.2,1,1\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_columns(spec, ds, need_observables=True)


# -- params files ------------------------------------------------------------------------------------
def test_params_json_and_yaml(tmp_path, spec) -> None:
    p = write(tmp_path, json.dumps({"parameters": {"gA": 0.5}, "constants": {"S0": 90.0}, "x0": {"X": 3.0},
                                    "seed": 3, "noise": {"X": 1}}), "p.json")
    vals = load_params(p, spec)
    assert vals.parameters == {"gA": 0.5, "S0": 90.0} and vals.x0 == {"X": 3.0}
    q = write(tmp_path, "parameters:\n  gB: '2.5'\nx0:\n  S: 1\n", "p.yaml")
    vals = load_params(q, spec)
    assert vals.parameters == {"gB": 2.5} and vals.x0 == {"S": 1.0}
    new = apply_params(spec, q)
    assert new.parameters["gB"].value == 2.5 and new.states["S"].x0 == 1.0
    assert apply_params(spec, None) is spec


def test_params_unknown_parameter(tmp_path, spec) -> None:
    p = write(tmp_path, '{\n  "parameters": {\n    "gA": 0.5,\n    "gZ": 1.0\n  }\n}\n', "p.json")
    with pytest.raises(DataError, match="unknown parameter 'gZ'") as info:
        load_params(p, spec)
    located(info.value, p, 4, "parameters.gZ")


def test_params_unknown_state(tmp_path, spec) -> None:
    p = write(tmp_path, '{"x0": {"Q": 1.0}}', "p.json")
    with pytest.raises(DataError, match="unknown state 'Q'") as info:
        load_params(p, spec)
    located(info.value, p, 1, "x0.Q")


@pytest.mark.parametrize("value", ['"abc"', "true", "null", "[1]", '"nan"', '"inf"'])
def test_params_non_numeric_value(tmp_path, spec, value: str) -> None:
    p = write(tmp_path, f'{{\n  "constants": {{\n    "S0": {value}\n  }}\n}}\n', "p.json")
    with pytest.raises(DataError, match="expected a finite number") as info:
        load_params(p, spec)
    located(info.value, p, 3, "constants.S0")


def test_params_out_of_bounds_and_log_scale(tmp_path, spec) -> None:
    p = write(tmp_path, "parameters:\n  gA: 5000.0\n", "p.yaml")
    with pytest.raises(DataError, match="outside bounds") as info:
        load_params(p, spec)
    located(info.value, p, 2, "parameters.gA")
    q = write(tmp_path, "constants:\n  S0: -1.0\n", "q.yaml")
    with pytest.raises(DataError, match="positive") as info:
        load_params(q, spec)
    located(info.value, q, 2, "constants.S0")


def test_params_bad_structure(tmp_path, spec) -> None:
    for text in ("[1, 2]", "parameters: [1, 2]\n", "{bad json", ""):
        p = write(tmp_path, text, "p.json")
        with pytest.raises(DataError) as info:
            load_params(p, spec)
        assert info.value.file == str(p)
    with pytest.raises(DataError, match="not found"):
        load_params(tmp_path / "nope.json", spec)


def test_truth_json_loads_as_params(spec, shared_data) -> None:
    path = shared_data / "chemostat-dev" / "truth.json"
    vals = load_params(path, spec)
    truth = json.loads(path.read_text())
    assert vals.parameters == {**truth["parameters"], **truth["constants"]}
    assert vals.x0 == truth["x0"]
    assert set(vals.parameters) == set(spec.parameters)
    new = apply_params(spec, path)
    assert new.parameters["IA"].value == truth["parameters"]["IA"]


def test_shared_data_csv_reads(spec, shared_data) -> None:
    ds = read_csv(shared_data / "chemostat-dev" / "data.csv")
    assert ds.time_column == "time_h" and {"D", "X", "S"} <= set(ds.columns)
    check_columns(spec, ds, need_observables=True)
    u = input_matrix(spec, ds, ds.times)
    assert np.all(np.isfinite(u["D"][:-1]))


def test_data_for_a_spec_without_inputs(tmp_path) -> None:
    batch = loads_spec("states: {X: {x0: 1, role: main}}\nparameters: {}\nobservables: {X: {noise: {absolute: 1}}}\n")
    ds = read_csv(write(tmp_path, "t,X\n0,1\n"))
    assert input_matrix(batch, ds, ds.times) == {}
    check_columns(batch, ds, need_observables=True)


def test_csv_with_byte_order_mark(tmp_path) -> None:
    p = tmp_path / "bom.csv"
    p.write_text("time_h,X\n0,1\n1,2\n", encoding="utf-8-sig")  # as Excel writes "CSV UTF-8"
    ds = read_csv(p)
    assert ds.time_column == "time_h" and ds.columns["X"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("content, words", [
    (b'{"parameters": {"gA": NaN}}', "expected a finite number"),
    (b'{"parameters": {"gA": ' + b"9" * 5000 + b"}}", "cannot read value"),
    (b'{"parameters": {"gA": 1e999}}', "expected a finite number"),
    (b"parameters: {gA: 0.5}\x00\n", "NUL"),
    (b"parameters: {gA: 0.5}  # \xe9\n", "not UTF-8"),
    (b"a: &a [*a]\nparameters: {gA: 0.5}\n", "recursive"),
    (b"[" * 1000 + b"]" * 1000, "nested deeper"),
])
def test_params_hostile_files(tmp_path, spec, content: bytes, words: str) -> None:
    p = tmp_path / "params.json"
    p.write_bytes(content)
    with pytest.raises(DataError, match=words) as info:
        load_params(p, spec)
    assert str(info.value).startswith(f"{p}:") and "\n" not in str(info.value)


def test_params_json_with_tab_indentation(tmp_path, spec) -> None:
    p = write(tmp_path, json.dumps({"parameters": {"gA": 0.5}, "x0": {"X": 2.0}}, indent="\t"), "tab.json")
    vals = load_params(p, spec)
    assert vals.parameters == {"gA": 0.5} and vals.x0 == {"X": 2.0}
    q = write(tmp_path, '{\n\t"parameters": {\n\t\t"gA": 0.5,\n\t\t"gZ": 1.0\n\t}\n}\n', "tab2.json")
    with pytest.raises(DataError, match="unknown parameter 'gZ'") as info:
        load_params(q, spec)
    located(info.value, q, 4, "parameters.gZ")
