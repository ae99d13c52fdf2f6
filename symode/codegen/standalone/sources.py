"""The files of a standalone solver rendered from ``standalone/templates/`` (``$name`` placeholders,
:func:`symode.codegen.render.render`).

What is filled in: identifiers (the prefix, state/parameter/input/observable names), numbers formatted
here, fixed text, and free text of the spec escaped for its target (:mod:`symode.codegen.escape`): the
model's name in C and Makefile comments and a C string; names, units and descriptions in the README.
Units and descriptions are not written into C at all.
"""

from __future__ import annotations

import math
from pathlib import Path

from symode.codegen.escape import c_comment, c_string, make_comment, make_shell_word, markdown
from symode.codegen.layout import Layout
from symode.codegen.render import render
from symode.codegen.standalone.facts import C_FILES, MAKE_CFLAGS, STANDALONE_VERSION, ModelFacts
from symode.codegen.wrapper import render_wrapper

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _c_double(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return repr(float(v))


def _c_names(names: list[str]) -> str:
    return "{" + ", ".join([*(c_string(n) for n in names), "NULL"]) + "}"


def _c_doubles(values: list[float | None]) -> str:
    return "{" + ", ".join([*(_c_double(v) for v in values), "0.0"]) + "}"


def _common(f: ModelFacts) -> dict[str, str | int]:
    return {"p": f.prefix, "P": f.P, "VERSION": STANDALONE_VERSION, **f.sizes}


def name_table(f: ModelFacts) -> str:
    """The names, default values and noise model as lines of a C block comment."""
    rows = []

    def block(title: str, names: list[str], extra: list[str]) -> None:
        rows.append(f" * {title} ({len(names)}):")
        rows.extend(f" *   {i:3d}  {n}  [{extra[i]}]" for i, n in enumerate(names))
        if not names:
            rows.append(" *   (none)")

    block("States x", f.states, [f"default x0 {v:g}" for v in f.x0_default])
    block("Parameters p", f.parameters, [f"default {v:g}" for v in f.p_default])
    block("Inputs u", f.inputs, [("linear" if n in f.linear else "piecewise constant")
                                 + ("" if d is None else f", default {d:g}") for n, d in zip(f.inputs, f.u_default,
                                                                                           strict=True)])
    block("Observables y", f.observables,
          [f"{c_comment(e)}; sigma^2 = {a:g}^2 + ({r:g} d)^2"
           for e, a, r in zip(f.obs_expr, f.noise_abs, f.noise_rel, strict=True)])
    rows.append(" * Units and descriptions: README.md.")
    return "\n".join(rows)


def _c_name(f: ModelFacts) -> str:
    return "'" + c_comment(f.name) + "'"


def header(f: ModelFacts) -> str:
    """model.h: the public API."""
    return render(TEMPLATES / "model.h", **_common(f), NAME=_c_name(f), TABLE=name_table(f))


def api_source(f: ModelFacts) -> str:
    """model.c: the public API on top of the wrapper, with the names and default values."""
    linear = ", ".join([*("1" if n in f.linear else "0" for n in f.inputs), "0"])
    return render(
        TEMPLATES / "model.c", **_common(f), NAME=_c_name(f), TABLE=name_table(f), CNAME=c_string(f.name),
        STATE_NAMES=_c_names(f.states), PARAM_NAMES=_c_names(f.parameters), INPUT_NAMES=_c_names(f.inputs),
        OBS_NAMES=_c_names(f.observables), INPUT_LINEAR="{" + linear + "}", X0=_c_doubles(f.x0_default),
        PDEF=_c_doubles(f.p_default), UDEF=_c_doubles(f.u_default), NABS=_c_doubles(f.noise_abs),
        NREL=_c_doubles(f.noise_rel))


def wrapper_source(layout: Layout, *, heap_work: bool) -> str:
    """model_wrapper.c: symode's wrapper, as in symode's model libraries, its entry points not exported."""
    return render_wrapper(layout, heap_work=heap_work, exported=False)


def example(f: ModelFacts) -> str:
    """example.c: CSV of inputs in, trajectory out."""
    return render(TEMPLATES / "example.c", p=f.prefix, P=f.P, NAME=_c_name(f))


def makefile(f: ModelFacts) -> str:
    """Makefile: separate translation units, libmodel.so, the example, ``check`` and ``embed``."""
    header_row = "time" + "".join(f",{n}" for n in f.inputs)
    row = "".join(f",{d if d is not None else 0.0!r}" for d in f.u_default)
    csv = "\\n".join([header_row, *(f"{t}{row}" for t in (0, 1, 2))]) + "\\n"
    return render(TEMPLATES / "Makefile", p=f.prefix, NAME="'" + make_comment(f.name) + "'", CFLAGS=MAKE_CFLAGS,
                  CHECK_CSV=make_shell_word(csv))


def readme(f: ModelFacts) -> str:
    """README.md: what the directory holds, the API, the names with their units and descriptions."""
    def names(ns: list[str]) -> str:
        return ", ".join(f"`{n}`" for n in ns) or "—"

    rows = []
    for kind, label in (("states", "state"), ("parameters", "parameter"), ("inputs", "input"),
                        ("observables", "observable")):
        for n, (unit, description) in f.notes.get(kind, {}).items():
            rows.append(f"| {label} | `{n}` | {markdown(unit)} | {markdown(description)} |")
    sources = " ".join(C_FILES)
    objects = " ".join(n[:-2] + ".o" for n in C_FILES)
    return render(TEMPLATES / "README.md", **_common(f), NAME=markdown(f.name), STATES=names(f.states),
                  PARAMS=names(f.parameters), INPUTS=names(f.inputs), OBS=names(f.observables),
                  NAMES="\n".join(rows), CFLAGS=MAKE_CFLAGS, SOURCES=sources, OBJECTS=objects)

