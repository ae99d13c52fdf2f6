"""Hostile and mutated input through the command line: specs, params files and data CSVs that someone
else wrote. Every run ends with exit 0, or exit 2 and one located error line; never a traceback, and
nothing is written outside the output directory."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symode.cli.main import main
from symode.spec import load_spec
from symode.spec.limits import MAX_CSV_BYTES, MAX_DOCUMENT_BYTES

from .conftest import SPECS

SPEC_FILES = sorted(p.name for p in SPECS.glob("*.yaml"))
CHEMOSTAT = SPECS / "chemostat.yaml"
EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: A short data file of the chemostat spec (inputs D, observables X and S).
CSV = "time_h,D,X,S\n" + "".join(f"{0.5 * k:g},0.25,{20 + k:g},{5 - 0.1 * k:g}\n" for k in range(9))


def _params_text() -> str:
    spec = load_spec(CHEMOSTAT)
    return json.dumps({"parameters": {n: p.value for n, p in spec.parameters.items() if p.estimate},
                       "x0": {n: s.x0 for n, s in spec.states.items()}}, indent=2)


PARAMS = _params_text()


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def run_cli(args: list[str], workdir: Path) -> tuple[int, str]:
    """``symode ARGS`` in-process with ``workdir`` as current directory: (exit status, stderr). Fails the
    test on a traceback or a file written outside ``workdir / 'out'``."""
    before = _files(workdir)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(args)
    finally:
        os.chdir(cwd)
    new = {p for p in _files(workdir) - before if p.parts[0] != "out"}
    assert not new, f"files written outside the output directory: {sorted(map(str, new))}"
    return code, err.getvalue()


def assert_clean_exit(code: int, stderr: str, file: Path | None = None) -> None:
    """Exit 0, or exit 2 with exactly one error line (naming ``file`` when given)."""
    assert "Traceback" not in stderr, stderr
    assert code in (0, 2), (code, stderr)
    if code == 2:
        errors = [ln for ln in stderr.splitlines() if ln.startswith("symode: error: ")]
        assert len(errors) == 1, stderr
        if file is not None:
            assert errors[0].startswith(f"symode: error: {file}"), stderr
    for line in stderr.splitlines():       # every other line is a one-line warning or progress
        assert line.startswith(("symode: ", "wrote ")), stderr


# -- mutations --------------------------------------------------------------------------------------------
NASTY_NUMBERS = [".nan", ".inf", "-.inf", "NaN", "1e999", "-1e308", "1e-320", "9" * 400, "0", "-1", "1e308"]


@st.composite
def mutated(draw, text: str) -> bytes:
    """``text`` with one to three damages: byte flips, truncation, a deleted or duplicated line, a number
    replaced by a nasty one, NUL bytes, invalid UTF-8, deep nesting or an alias bomb."""
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "delete_line", "duplicate_line", "number", "nul",
                                     "utf8", "nest", "bomb"]))
        n = len(data)
        at = draw(st.integers(0, max(n - 1, 0)))
        lines = data.split(b"\n")
        k = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "flip" and n:
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            data = data[:at]
        elif kind == "delete_line" and lines:
            del lines[k]
            data = bytearray(b"\n".join(lines))
        elif kind == "duplicate_line" and lines:
            lines.insert(k, lines[k])
            data = bytearray(b"\n".join(lines))
        elif kind == "number":
            digits = [i for i in range(n) if chr(data[i]).isdigit()]
            if digits:
                i = draw(st.sampled_from(digits))
                data[i:i + 1] = draw(st.sampled_from(NASTY_NUMBERS)).encode()
        elif kind == "nul":
            data[at:at] = b"\x00"
        elif kind == "utf8":
            data[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"]))
        elif kind == "nest":
            depth = draw(st.integers(20, 3000))
            data[at:at] = b"[" * depth + b"]" * depth
        elif kind == "bomb":
            data[:0] = b'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + b"".join(
                b"%c: &%c [" % (ch, ch) + b",".join([b"*%c" % (ch - 1)] * 10) + b"]\n" for ch in range(98, 106))
    return bytes(data)


@EXAMPLES
@given(name=st.sampled_from(SPEC_FILES), data=st.data())
def test_mutated_specs_validate_or_exit_2(name: str, data) -> None:
    content = data.draw(mutated((SPECS / name).read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / name
        spec.write_bytes(content)
        code, stderr = run_cli(["validate", str(spec)], root)
    assert_clean_exit(code, stderr)


@EXAMPLES
@given(content=mutated(PARAMS), suffix=st.sampled_from([".json", ".yaml"]))
def test_mutated_params_files(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params = root / f"params{suffix}"
        params.write_bytes(content)
        code, stderr = run_cli(["validate", str(CHEMOSTAT), "--params", str(params)], root)
    assert_clean_exit(code, stderr, params if code == 2 else None)


@EXAMPLES
@given(content=mutated(CSV))
def test_mutated_data_files_simulate(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data.csv"
        data.write_bytes(content)
        code, stderr = run_cli(["simulate", str(CHEMOSTAT), "--data", str(data), "--t-end", "2",
                                "-o", str(root / "out" / "traj.csv")], root)
    assert_clean_exit(code, stderr)
    if code == 0:
        assert "traj.csv" in stderr


def test_shipped_inputs_pass(tmp_path) -> None:
    """The unmutated files work, so the mutation tests above do test mutations."""
    (tmp_path / "data.csv").write_text(CSV)
    (tmp_path / "params.json").write_text(PARAMS)
    code, stderr = run_cli(["simulate", str(CHEMOSTAT), "--data", "data.csv", "--params", "params.json",
                            "--t-end", "2", "-o", "out/traj.csv"], tmp_path)
    assert code == 0, stderr
    assert (tmp_path / "out" / "traj.csv").exists()


# -- the hostile files of the issue, one by one ----------------------------------------------------------
def _laughs() -> bytes:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]" for k in range(1, 10)]
    return ("\n".join(lines) + "\n").encode()


def _line_of(content: bytes, needle: bytes) -> int:
    return content[:content.index(needle)].count(b"\n") + 1


HOSTILE_FILES = {
    "recursive anchor": (b"x: &a [*a]\nstates: {X: 1}\nparameters: {}\n", 1),
    "alias fan-out": (_laughs(), 4),
    "deep nesting": (b"states: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", 1),
    "NUL bytes": (CHEMOSTAT.read_bytes().replace(b"name: chemostat", b"name: chem\x00ostat"),
                  _line_of(CHEMOSTAT.read_bytes(), b"name: chemostat")),
    "non-UTF-8": (CHEMOSTAT.read_bytes().replace(b"substrate}", b"substr\xe4t}"),
                  _line_of(CHEMOSTAT.read_bytes(), b"substrate}")),
    "UTF-16": (CHEMOSTAT.read_text().encode("utf-16"), 1),
    "oversize": (None, None),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_hostile_spec_file_exits_2_with_one_located_line(case: str, tmp_path) -> None:
    content, line = HOSTILE_FILES[case]
    spec = tmp_path / "evil.yaml"
    if content is None:                       # a sparse file just over the limit
        with open(spec, "wb") as fh:
            fh.write(CHEMOSTAT.read_bytes())
            fh.truncate(MAX_DOCUMENT_BYTES + 1)
    else:
        spec.write_bytes(content)
    t0 = time.perf_counter()
    code, stderr = run_cli(["validate", str(spec)], tmp_path)
    assert time.perf_counter() - t0 < 10.0    # a safety net only: refusal is meant to be instant
    assert code == 2
    assert_clean_exit(code, stderr, spec)
    where = f"symode: error: {spec}:{line}: " if line is not None else f"symode: error: {spec}: "
    assert stderr.strip().splitlines()[-1].startswith(where), stderr


@pytest.mark.parametrize("case", ["NUL bytes", "non-UTF-8", "oversize"])
def test_hostile_data_file_exits_2_with_one_located_line(case: str, tmp_path) -> None:
    data = tmp_path / "data.csv"
    if case == "NUL bytes":
        data.write_bytes(CSV.replace("0.25", "0.2\x005", 1).encode())
    elif case == "non-UTF-8":
        data.write_bytes(CSV.encode() + b"9,0.25,1,1 \xb5g\n")
    else:
        with open(data, "wb") as fh:
            fh.write(CSV.encode())
            fh.truncate(MAX_CSV_BYTES + 1)
    code, stderr = run_cli(["simulate", str(CHEMOSTAT), "--data", str(data), "--t-end", "2", "-o",
                            str(tmp_path / "out" / "traj.csv")], tmp_path)
    assert code == 2
    assert_clean_exit(code, stderr, data)
    assert not (tmp_path / "out").exists()


def test_the_real_command_line_refuses_an_alias_bomb(tmp_path) -> None:
    """One run through ``python -m symode`` (a separate process): the exit status and stderr as a shell
    user sees them."""
    spec = tmp_path / "lol.yaml"
    spec.write_bytes(_laughs())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "symode", "validate", str(spec)], capture_output=True,
                          text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"symode: error: {spec}:4: "), proc.stderr
    assert "aliases expand" in proc.stderr and proc.stdout == ""
