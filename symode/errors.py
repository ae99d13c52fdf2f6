"""Exceptions raised for user errors.

Every user-facing error carries a location (file, line, field) so the CLI can print one line of the form
``file:line: field: message`` and exit with status 2 — never a traceback.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, escapes) shown as ``\\n``/``\\xNN``: an error message
    built from user input stays one line and cannot drive the terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class SymodeError(Exception):
    """Base class of all errors caused by user input (spec, data, params, options)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def located(self, *, file: str | None = None, line: int | None = None,
                field: str | None = None) -> SymodeError:
        """Fill in missing location parts (outer layers know the file, inner ones the field)."""
        self.file = self.file or file
        self.line = self.line if self.line is not None else line
        self.field = self.field or field
        return self

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return one_line(f"{where}{field}{self.message}")


class SpecError(SymodeError):
    """The model spec is malformed or inconsistent."""


class ExpressionError(SpecError):
    """A rate or observable expression is not in the safe expression language."""


class DataError(SymodeError):
    """A data, inputs or params file is malformed or inconsistent with the spec."""


class SolverError(SymodeError):
    """The ODE solver failed (step-size underflow, non-finite state, step budget exhausted)."""
