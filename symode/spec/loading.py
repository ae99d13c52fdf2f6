"""Reading and writing spec files: YAML (with the input limits of :mod:`symode.spec.yamlio`) -> validated
:class:`~symode.spec.schema.Spec`, and back (``dump_spec`` writes a file that loads to an equal Spec)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symode.io import atomic_write_text
from symode.spec.schema import Spec
from symode.spec.validate import validate_spec
from symode.spec.yamlio import Located, load_yaml, load_yaml_file


def load_spec(path: str | Path) -> Spec:
    """Load and validate a spec file; raises :class:`~symode.errors.SpecError` with file, line and field."""
    spec = validate_spec(load_yaml_file(path))
    spec.source = str(path)
    return spec


def loads_spec(text: str, file: str = "<string>") -> Spec:
    """Load and validate a spec from YAML text."""
    return validate_spec(load_yaml(text, file))


def spec_from_dict(data: Mapping[str, Any], file: str = "<dict>") -> Spec:
    """Validate plain data (as produced by :meth:`Spec.to_dict`)."""
    return validate_spec(Located(copy.deepcopy(dict(data)), {}, file))


def dump_spec(spec: Spec, path: str | Path) -> None:
    """Write a spec atomically as YAML."""
    atomic_write_text(path, spec.to_yaml())
