"""Reading untrusted text files: a size limit, strict UTF-8 and no control characters.

:func:`read_text_file` reads at most ``max_bytes + 1`` bytes (so an endless device or a huge file is
refused without reading it), then refuses NUL bytes, invalid UTF-8 and control characters with an error
naming the file and the line. A leading byte-order mark is dropped (editors on Windows write one).
"""

from __future__ import annotations

import re
from pathlib import Path

from symode.errors import SymodeError

#: Characters a text file may not contain: the C0 controls except tab, LF and CR, DEL, the C1 controls
#: except NEL, and the non-characters U+FFFE/U+FFFF (the set YAML excludes; also applied to CSVs, where
#: such bytes only come from binary files and would reach the terminal in messages).
NOT_TEXT = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _line_of(data: bytes | str, pos: int) -> int:
    return data.count(b"\n" if isinstance(data, bytes) else "\n", 0, pos) + 1


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def check_text(text: str, file: str, *, max_chars: int, error: type[SymodeError]) -> None:
    """Refuse text longer than ``max_chars`` or holding control characters (located by line)."""
    if len(text) > max_chars:
        raise error(f"text of {len(text)} characters is over the limit of {max_chars}", file=file)
    m = NOT_TEXT.search(text)
    if m is not None:
        c = m.group()
        what = "NUL byte (binary data)" if c == "\0" else f"control character U+{ord(c):04X}"
        raise error(f"{what}: not a text file", file=file, line=_line_of(text, m.start()))


def read_text_file(path: str | Path, *, max_bytes: int, error: type[SymodeError], what: str = "file") -> str:
    """The text of a UTF-8 file of at most ``max_bytes`` bytes; any problem raises ``error`` (a located
    :class:`~symode.errors.SymodeError` subclass)."""
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error("file not found", file=file) from None
    except IsADirectoryError:
        raise error(f"is a directory, not a {what}", file=file) from None
    except OSError as exc:
        raise error(f"cannot read {what} ({exc.strerror or exc})", file=file) from None
    if len(data) > max_bytes:
        raise error(f"{what} is larger than the limit of {_size(max_bytes)}", file=file)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise error("UTF-16 text; save the file as UTF-8", file=file, line=1)
    nul = data.find(b"\0")
    if nul >= 0:
        raise error("NUL byte (binary data): not a text file", file=file, line=_line_of(data, nul))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        raise error(f"not UTF-8 text (byte 0x{bad}); save the file as UTF-8", file=file,
                    line=_line_of(data, exc.start)) from None
    check_text(text, file, max_chars=max_bytes, error=error)
    return text
