"""YAML loading that remembers where every value came from, within fixed limits.

:func:`load_yaml` returns the plain data (as ``yaml.safe_load`` would) together with a map from each
path (a tuple of keys and list indices) to its 1-based line number, so that validation errors can name
the file and line of the offending field. Duplicate mapping keys are rejected (``safe_load`` silently
keeps the last one, which hides typos).

The text is untrusted: before parsing, control characters are refused (:mod:`symode.spec.textio`);
while composing the node graph from the parser's events (iteratively, so no input reaches Python's
recursion limit), nesting deeper than :data:`~symode.spec.limits.MAX_NESTING_DEPTH`, an alias used
inside its own anchor (a cycle), aliases expanding to more than
:data:`~symode.spec.limits.MAX_ALIAS_NODES` nodes ("billion laughs", merge-key bombs) and documents of
more than :data:`~symode.spec.limits.MAX_YAML_NODES` nodes are refused, each with a located error.
Only the safe YAML tags are constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from symode.errors import SpecError, SymodeError
from symode.spec.limits import MAX_ALIAS_NODES, MAX_DOCUMENT_BYTES, MAX_NESTING_DEPTH, MAX_YAML_NODES
from symode.spec.textio import check_text, read_text_file

Path_ = tuple[Any, ...]

#: libyaml's parser (C, much faster) when PyYAML was built with it; the events are the same.
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def load_yaml(text: str, file: str = "<string>", *, error: type[SymodeError] = SpecError) -> Located:
    """Parse YAML text safely (no Python object tags, the limits above) and record the line of every key.
    Every problem raises ``error`` naming the file and line."""
    check_text(text, file, max_chars=MAX_DOCUMENT_BYTES, error=error)
    loader = YAML_LOADER(text)
    try:
        node = _Composer(loader, file, error).document()
        if node is None:
            return Located(None, {}, file)
        lines: dict[Path_, int] = {}
        data = _build(loader, node, (), lines, file, error)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise error(f"YAML syntax error: {exc.problem or exc.context}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", file=file) from None
    finally:
        loader.dispose()
    return Located(data, lines, file)


def load_yaml_file(path: str | Path, *, error: type[SymodeError] = SpecError) -> Located:
    """:func:`load_yaml` of a file of at most :data:`~symode.spec.limits.MAX_DOCUMENT_BYTES`."""
    return load_yaml(read_text_file(path, max_bytes=MAX_DOCUMENT_BYTES, error=error), str(path), error=error)


class _Frame:
    """A sequence or mapping being composed: its node, the pending key node (mappings), its anchor and
    its size so far (nodes, aliases expanded)."""

    __slots__ = ("anchor", "key", "node", "size")

    def __init__(self, node: yaml.CollectionNode, anchor: str | None) -> None:
        self.node, self.anchor, self.key, self.size = node, anchor, None, 1


class _Composer:
    """Builds the node graph of one document from parser events, like PyYAML's Composer but iteratively
    and with the limits of the module docstring (sizes count aliases expanded)."""

    def __init__(self, loader: yaml.SafeLoader, file: str, error: type[SymodeError]) -> None:
        self.loader, self.file, self.error = loader, file, error
        self.anchors: dict[str, yaml.Node] = {}
        self.sizes: dict[str, int] = {}          # expanded size of each completed anchored node
        self.stack: list[_Frame] = []
        self.alias_nodes = 0
        self.total = 0

    def fail(self, message: str, mark: Any) -> SymodeError:
        path: list[Any] = []
        for frame in self.stack:
            if isinstance(frame.node, yaml.SequenceNode):
                path.append(len(frame.node.value))
            elif isinstance(frame.key, yaml.ScalarNode):
                path.append(frame.key.value)
            else:
                break
        if len(path) > 6:
            path = [*path[:3], "...", *path[-2:]]
        field = ".".join(str(p) for p in path) or None
        return self.error(message, file=self.file, line=mark.line + 1 if mark is not None else None, field=field)

    def document(self) -> yaml.Node | None:
        ld = self.loader
        ld.get_event()                                  # StreamStart
        node = None
        if not ld.check_event(yaml.StreamEndEvent):
            ld.get_event()                              # DocumentStart
            node = self.node()
            ld.get_event()                              # DocumentEnd
        if not ld.check_event(yaml.StreamEndEvent):
            event = ld.get_event()
            raise yaml.composer.ComposerError("expected a single document in the stream",
                                              node.start_mark if node else None, "but found another document",
                                              event.start_mark)
        ld.get_event()
        return node

    def add(self, node: yaml.Node, size: int) -> yaml.Node | None:
        """Attach a completed node to the open collection; the node itself when it is the root."""
        if not self.stack:
            return node
        frame = self.stack[-1]
        frame.size += size
        if isinstance(frame.node, yaml.SequenceNode):
            frame.node.value.append(node)
        elif frame.key is None:
            frame.key = node
        else:
            frame.node.value.append((frame.key, node))
            frame.key = None
        return None

    def count(self, n: int, mark: Any) -> None:
        self.total += n
        if self.total > MAX_YAML_NODES:
            raise self.fail(f"more than {MAX_YAML_NODES} values in one document", mark)

    def node(self) -> yaml.Node:
        ld = self.loader
        while True:
            event = ld.get_event()
            anchor = getattr(event, "anchor", None)
            if isinstance(event, yaml.CollectionEndEvent):
                frame = self.stack.pop()
                frame.node.end_mark = event.end_mark
                if frame.key is not None:       # cannot happen with a well-formed event stream
                    raise self.fail("mapping key without a value", event.start_mark)
                if frame.anchor is not None:
                    self.sizes[frame.anchor] = frame.size
                done = self.add(frame.node, frame.size)
            elif isinstance(event, yaml.AliasEvent):
                if anchor not in self.anchors:
                    raise yaml.composer.ComposerError(None, None, f"found undefined alias {anchor!r}",
                                                      event.start_mark)
                if anchor not in self.sizes:
                    raise self.fail(f"alias *{anchor} is used inside its own anchor &{anchor} (a recursive "
                                    f"structure)", event.start_mark)
                size = self.sizes[anchor]
                self.alias_nodes += size
                if self.alias_nodes > MAX_ALIAS_NODES:
                    raise self.fail(f"aliases expand to more than {MAX_ALIAS_NODES} values (alias *{anchor} "
                                    f"adds {size}); write the values out or use fewer nested aliases",
                                    event.start_mark)
                self.count(size, event.start_mark)
                done = self.add(self.anchors[anchor], size)
            else:
                if anchor is not None and anchor in self.anchors:
                    raise self.fail(f"duplicate anchor &{anchor} (first defined on line "
                                    f"{self.anchors[anchor].start_mark.line + 1})", event.start_mark)
                self.count(1, event.start_mark)
                tag = event.tag
                if isinstance(event, yaml.ScalarEvent):
                    if tag is None or tag == "!":
                        tag = ld.resolve(yaml.ScalarNode, event.value, event.implicit)
                    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                    if anchor is not None:
                        self.anchors[anchor] = node
                        self.sizes[anchor] = 1
                    done = self.add(node, 1)
                elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                    if len(self.stack) >= MAX_NESTING_DEPTH:
                        raise self.fail(f"nested deeper than {MAX_NESTING_DEPTH} levels", event.start_mark)
                    seq = isinstance(event, yaml.SequenceStartEvent)
                    cls = yaml.SequenceNode if seq else yaml.MappingNode
                    if tag is None or tag == "!":
                        tag = ld.resolve(cls, None, event.implicit)
                    node = cls(tag, [], event.start_mark, None, flow_style=event.flow_style)
                    if anchor is not None:
                        self.anchors[anchor] = node
                    self.stack.append(_Frame(node, anchor))
                    continue
                else:
                    raise yaml.composer.ComposerError(None, None, f"unexpected {type(event).__name__}",
                                                      event.start_mark)
            if done is not None:
                return done


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str,
           error: type[SymodeError]) -> Any:
    """Plain data of a composed node (recursion depth bounded by the nesting limit)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node, file, error)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise error("mapping keys must be scalars", file=file, line=key_node.start_mark.line + 1)
            if key in out:
                raise error(f"duplicate key {key!r}", file=file, line=key_node.start_mark.line + 1,
                            field=".".join(str(p) for p in (*path, key)))
            out[key] = _build(loader, value_node, (*path, key), lines, file, error)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines, file, error) for i, item in enumerate(node.value)]
    return _scalar(loader, node, file, error)


def _scalar(loader: yaml.SafeLoader, node: yaml.Node, file: str, error: type[SymodeError]) -> Any:
    """A node constructed by the safe constructor; a value it cannot convert (an integer of thousands of
    digits, a date like 2001-13-45) is a located error, not a crash."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError, TypeError) as exc:
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        shown = repr(text if len(text) <= 40 else text[:40] + "...")
        raise error(f"cannot read value {shown} as {node.tag.rsplit(':', 1)[-1]} ({str(exc).split(':')[0][:80]})",
                    file=file, line=node.start_mark.line + 1) from None
