"""Example specs shipped with the package, and the example data sets simulated from them.

The specs are package data (``symode/examples/specs/*.yaml``), so they are found after a normal
``pip install`` from any directory:

>>> from symode.examples import spec_path
>>> spec_path("chemostat").name
'chemostat.yaml'

The data sets (``symode example NAME -o DIR``) are made by :mod:`symode.examples.datasets`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from symode.errors import SymodeError

__all__ = ["spec_names", "spec_path", "specs_dir"]


def specs_dir() -> Path:
    """The directory of the shipped example specs."""
    return Path(str(files(__name__).joinpath("specs")))


def spec_names() -> list[str]:
    """Names of the shipped specs (file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in specs_dir().glob("*.yaml"))


def spec_path(name: str) -> Path:
    """Path of the shipped spec ``name`` (``chemostat`` or ``chemostat.yaml``)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = specs_dir() / f"{stem}.yaml"
    if not path.is_file():
        raise SymodeError(f"no example spec {name!r}; shipped specs: {', '.join(spec_names())}")
    return path
