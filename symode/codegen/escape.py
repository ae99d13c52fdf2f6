"""Free text in generated files: validated identifiers, or escaped by one function per target language.

Every byte symode writes into generated C, Makefiles or Markdown is a fixed template byte, a number
formatted by symode, a validated identifier (:func:`identifier`), or the output of one of the functions
below. None of them lets its input end the construct it is placed in:

========================  =========================================================================
:func:`c_comment`         inside ``/* ... */``: no ``*/``, ``/*``, ``//``, backslash, ``?`` or newline
:func:`c_string`          a complete C string literal; every byte outside a safe set is an octal escape
:func:`py_string`         a complete Python string literal (ASCII), ``ast.literal_eval`` gives the text
:func:`make_comment`      after ``#`` in a Makefile: one line, no backslash
:func:`make_shell_word`   one shell word in a recipe or variable: ``$`` doubled, single-quoted
:func:`markdown`          Markdown inline text: special characters backslash-escaped, one line
========================  =========================================================================

The generated Python loader holds no model text at all: it reads a JSON file written by ``json.dump``.
"""

from __future__ import annotations

import re
import string

from symode.errors import SymodeError

#: Names written into code: states, parameters, inputs, observables, the C API prefix (``fullmatch``).
IDENTIFIER_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

#: Printable ASCII without backslash (escapes, line splicing) and ``?`` (trigraphs such as ``??/``).
_C_SAFE = frozenset(string.ascii_letters + string.digits + " !\"#$%&'()*+,-./:;<=>@[]^_`{|}~")
_C_STRING_SAFE = _C_SAFE - {'"'}
_MAKE_COMMENT_SAFE = frozenset(string.ascii_letters + string.digits + " !\"#$%&'()*+,-./:;<=>?@[]^_`{|}~")
#: Characters with a meaning in Markdown inline text, escaped by :func:`markdown`.
MARKDOWN_SPECIAL = frozenset("\\`*_{}[]<>#|!&~$")


def identifier(text: object, what: str = "name") -> str:
    """``text`` if it is an identifier (letters, digits and _, starting with a letter), else a
    :class:`SymodeError`."""
    if not isinstance(text, str) or not IDENTIFIER_RE.fullmatch(text):
        raise SymodeError(f"invalid {what} {text!r}: use letters, digits and _, starting with a letter")
    return text


def c_comment(text: str) -> str:
    """``text`` for the inside of a one-line C block comment.

    Characters other than printable ASCII (and backslash, ``?``) become ``_``; ``*/``, ``/*`` and ``//``
    are split by a space, so the comment can neither end early nor nest (``-Wcomment``)."""
    out = "".join(ch if ch in _C_SAFE else "_" for ch in str(text))
    while "*/" in out or "/*" in out or "//" in out:
        out = out.replace("*/", "* /").replace("/*", "/ *").replace("//", "/ /")
    return out


def c_string(text: str) -> str:
    """A C string literal (quotes included) whose value is the UTF-8 encoding of ``text``.

    Letters, digits, space and punctuation other than ``"``, backslash and ``?`` are kept; every other
    byte is a three-digit octal escape (which, unlike a hex escape, cannot swallow the next character)."""
    body = "".join(chr(b) if chr(b) in _C_STRING_SAFE else f"\\{b:03o}" for b in str(text).encode("utf-8",
                                                                                              "surrogatepass"))
    return f'"{body}"'


def py_string(text: str) -> str:
    """A Python string literal (ASCII only) whose value is ``text``: ``ast.literal_eval`` gives it back."""
    return ascii(str(text))


def make_comment(text: str) -> str:
    """``text`` for a Makefile comment line (after ``#``): printable ASCII without backslash (which would
    continue the comment onto the next line); other characters become ``_``."""
    return "".join(ch if ch in _MAKE_COMMENT_SAFE else "_" for ch in str(text))


def make_shell_word(text: str, *, variable: bool = False) -> str:
    """``text`` as one shell word for a Makefile recipe line (``variable=True``: for the value of a make
    variable that a recipe expands). Single-quoted for the shell, ``$`` doubled for make (and ``#`` escaped
    in variables, where it would start a comment). Control characters (a newline ends a recipe line)
    are refused."""
    text = str(text)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError("control characters cannot be written into a Makefile")
    word = "'" + text.replace("'", "'\\''") + "'"
    word = word.replace("$", "$$")
    return word.replace("#", "\\#") if variable else word


def markdown(text: str) -> str:
    """``text`` as literal Markdown inline text (placed after other text on its line, e.g. in a table cell
    or a heading): every character with an inline meaning (CommonMark, GitHub tables, math) is
    backslash-escaped; line breaks and other control characters become spaces."""
    out = []
    for ch in str(text):
        if ord(ch) < 32 or 127 <= ord(ch) < 160 or ch in "\u2028\u2029":
            out.append(" ")
        elif ch in MARKDOWN_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)
