"""The one template mechanism of code generation: files with ``$identifier`` placeholders
(:class:`string.Template`; a literal ``$`` is written ``$$``).

Templates are real files in the package (``symode/codegen/templates/``,
``symode/codegen/standalone/templates/``). The values filled in must already be safe for the target
language: identifiers, numbers formatted by symode, or text escaped by :mod:`symode.codegen.escape`.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

#: Templates of the model library (the C wrapper around the CasADi functions).
TEMPLATES = Path(__file__).resolve().parent / "templates"


def render(path: Path, **values: str | int) -> str:
    """The template file ``path`` with every ``$name`` (or ``${name}``) replaced by ``values[name]``.

    A placeholder without a value, or a ``$`` that is neither ``$$`` nor a placeholder, is an error here
    rather than a broken file."""
    return Template(path.read_text()).substitute({k: str(v) for k, v in values.items()})
