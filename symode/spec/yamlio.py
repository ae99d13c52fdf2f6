"""YAML loading that remembers where every value came from.

:func:`load_yaml` returns the plain data (as ``yaml.safe_load`` would) together with a map from each
path (a tuple of keys and list indices) to its 1-based line number, so that validation errors can name
the file and line of the offending field. Duplicate mapping keys are rejected (``safe_load`` silently
keeps the last one, which hides typos).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from symode.errors import SpecError

Path_ = tuple[Any, ...]


class Located:
    """Parsed YAML data plus line numbers by path."""

    def __init__(self, data: Any, lines: dict[Path_, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line(self, path: Path_) -> int | None:
        """Line of ``path`` or of its nearest located ancestor."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: Path_, message: str, cls: type[SpecError] = SpecError) -> SpecError:
        field = ".".join(str(p) for p in path) if path else None
        return cls(message, file=self.file, line=self.line(path), field=field)


def load_yaml(text: str, file: str = "<string>") -> Located:
    """Parse YAML text safely (no Python object tags) and record the line of every key."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Located(None, {}, file)
        lines: dict[Path_, int] = {}
        data = _build(loader, node, (), lines, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError(f"YAML syntax error: {exc.problem or exc.context}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", file=file) from None
    finally:
        loader.dispose()
    return Located(data, lines, file)


def load_yaml_file(path: str | Path) -> Located:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file ({exc})", file=str(path)) from None
    return load_yaml(text, str(path))


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise SpecError("mapping keys must be scalars", file=file, line=key_node.start_mark.line + 1)
            if key in out:
                raise SpecError(f"duplicate key {key!r}", file=file, line=key_node.start_mark.line + 1,
                                field=".".join(str(p) for p in (*path, key)))
            out[key] = _build(loader, value_node, (*path, key), lines, file)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
