"""The escape functions of code generation (symode.codegen.escape): properties over arbitrary text
(hypothesis), and the real tools (C preprocessor and compiler, make, sh) on hostile examples."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symode.codegen.build import find_compiler
from symode.codegen.escape import (
    MARKDOWN_SPECIAL,
    c_comment,
    c_string,
    identifier,
    make_comment,
    make_shell_word,
    markdown,
    py_string,
)
from symode.codegen.render import render
from symode.errors import SymodeError

#: Text that tries to end each construct early, run code, or confuse a tool.
HOSTILE = [
    "x */ int evil(void) { return 1; } /* ",
    "x **// ...C code... /* ",
    'a"b\'c"""d\'\'\'e',
    "line\nbreak\r\n#include <stdlib.h>\n",
    "$(shell touch MARKER) ${HOME} $$ `touch MARKER` $(CC)",
    "__attribute__((constructor)) static void f(void) {}",
    "trigraph ??/\n*/ and backslash \\\n continued",
    "tab\there; semicolon; # hash % percent",
    "unicode: µ·ß — é 🧫 \u2028 \u202e",
    "",
    "*/*/*//**/",
    "\\",
    "'",
]

# text without surrogates (they cannot be encoded as UTF-8 by a YAML spec anyway)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
TEXT_PRINTABLE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200)


# ----------------------------------------------------------------------------------------------------
# identifiers
# ----------------------------------------------------------------------------------------------------

@given(TEXT)
def test_identifier_accepts_only_identifiers(text: str) -> None:
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", text):
        assert identifier(text) == text
    else:
        with pytest.raises(SymodeError):
            identifier(text)


@pytest.mark.parametrize("bad", ["", "1abc", "a-b", "a b", "a\n", "_x", "x;", "é", "a$b"])
def test_identifier_rejects(bad: str) -> None:
    with pytest.raises(SymodeError, match="invalid"):
        identifier(bad)


# ----------------------------------------------------------------------------------------------------
# C comment
# ----------------------------------------------------------------------------------------------------

@given(TEXT)
def test_c_comment_cannot_close_or_continue(text: str) -> None:
    out = c_comment(text)
    for bad in ("*/", "/*", "//", "\\", "?", "\n", "\r"):
        assert bad not in out
    assert all(32 <= ord(ch) < 127 for ch in out)
    # only spaces are inserted: every other character is kept, or replaced by _ when unsafe
    assert out.replace(" ", "") == "".join(ch if 32 <= ord(ch) < 127 and ch not in "\\?" else "_"
                                           for ch in text).replace(" ", "")


@given(st.text(alphabet=string.ascii_letters + string.digits + " .,:;-+=()[]", max_size=100))
def test_c_comment_keeps_plain_text(text: str) -> None:
    assert c_comment(text) == text


# ----------------------------------------------------------------------------------------------------
# C string literal
# ----------------------------------------------------------------------------------------------------

def _decode_c_literal(literal: str) -> bytes:
    """The bytes of a C string literal made of safe characters and three-digit octal escapes."""
    assert literal[0] == literal[-1] == '"'
    body = literal[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        if body[i] == "\\":
            assert re.fullmatch(r"[0-7]{3}", body[i + 1:i + 4]), body[i:i + 4]
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        else:
            assert body[i] not in '"\\?\n'
            out.append(ord(body[i]))
            i += 1
    return bytes(out)


@given(TEXT)
def test_c_string_round_trips(text: str) -> None:
    literal = c_string(text)
    assert all(32 <= ord(ch) < 127 for ch in literal)
    assert _decode_c_literal(literal) == text.encode("utf-8")


# ----------------------------------------------------------------------------------------------------
# Python string literal
# ----------------------------------------------------------------------------------------------------

@given(st.text(max_size=200))
def test_py_string_literal_evals_back(text: str) -> None:
    literal = py_string(text)
    assert literal.isascii() and "\n" not in literal
    assert ast.literal_eval(literal) == text
    node = ast.parse(literal, mode="eval").body
    assert isinstance(node, ast.Constant) and node.value == text


# ----------------------------------------------------------------------------------------------------
# Makefile
# ----------------------------------------------------------------------------------------------------

@given(TEXT)
def test_make_comment_is_one_line(text: str) -> None:
    out = make_comment(text)
    assert "\\" not in out and "\n" not in out and "\r" not in out
    assert all(32 <= ord(ch) < 127 for ch in out)


@given(TEXT_PRINTABLE.filter(lambda t: "\x7f" not in t))
def test_make_shell_word_round_trips(text: str) -> None:
    """make turns $$ into $; the shell's word splitting and quote removal then give the text back."""
    word = make_shell_word(text)
    assert "\n" not in word
    assert re.search(r"(?<!\$)\$(?!\$)", word.replace("$$", "")) is None
    assert shlex.split(word.replace("$$", "$")) == [text]
    var = make_shell_word(text, variable=True)
    assert shlex.split(var.replace("\\#", "#").replace("$$", "$")) == [text]


def test_make_shell_word_refuses_control_characters() -> None:
    for bad in ("a\nb", "a\rb", "\x00", "\x7f"):
        with pytest.raises(ValueError):
            make_shell_word(bad)


# ----------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------

@given(TEXT)
def test_markdown_escapes_every_special_character(text: str) -> None:
    out = markdown(text)
    assert "\n" not in out and "\r" not in out
    unescaped = re.sub(r"\\(.)", "", out)
    assert not any(ch in MARKDOWN_SPECIAL for ch in unescaped)
    expected = "".join(" " if (ord(ch) < 32 or 127 <= ord(ch) < 160 or ch in "\u2028\u2029") else ch
                       for ch in text)
    assert re.sub(r"\\(.)", r"\1", out) == expected


def test_markdown_examples() -> None:
    assert markdown("g/L (hidden)") == "g/L (hidden)"
    assert markdown("[x](javascript:y) <b>*a*</b> | `c` \\") == (
        "\\[x\\](javascript:y) \\<b\\>\\*a\\*\\</b\\> \\| \\`c\\` \\\\")


# ----------------------------------------------------------------------------------------------------
# The real tools
# ----------------------------------------------------------------------------------------------------

needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler")


@needs_cc
def test_c_comment_and_string_in_a_real_compiler(tmp_path: Path) -> None:
    """Every hostile text as a comment and as a string: the program compiles with -Werror (no comment
    closed early, no stray #include or code) and prints each string's exact bytes."""
    lines = ["#include <stdio.h>", "static const char *const texts[] = {"]
    for k, text in enumerate(HOSTILE):
        lines.append(f"    /* {c_comment(text)} */ {c_string(text)}, // {c_comment(text)}")
        lines.append(f"    /* item {k} */")
    lines += ["};", "int main(void) {", "    unsigned k;",
              "    for (k = 0; k < sizeof texts / sizeof *texts; k++)",
              "        fwrite(texts[k], 1, __builtin_strlen(texts[k]) + 1, stdout);", "    return 0;", "}"]
    src = tmp_path / "t.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "t"
    proc = subprocess.run([find_compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == [t.encode() for t in HOSTILE]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_escapes_in_real_make(tmp_path: Path) -> None:
    """Hostile text in comments, recipes and variables: nothing runs, each word arrives intact."""
    marker = tmp_path / "MARKER"
    texts = [t.replace("MARKER", str(marker)) for t in HOSTILE if not any(ord(c) < 32 for c in t)]
    rules = [f"# {make_comment(t)}" for t in HOSTILE]
    rules += ["all:"]
    for text in texts:
        rules.append(f"\tprintf '%s\\0' {make_shell_word(text)} >> out_recipe")
    for k, text in enumerate(texts):
        rules.insert(0, f"V{k} = {make_shell_word(text, variable=True)}")
        rules.append(f"\tprintf '%s\\0' $(V{k}) >> out_variable")
    (tmp_path / "Makefile").write_text("\n".join(rules) + "\n")
    proc = subprocess.run(["make", "-s"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    for name in ("out_recipe", "out_variable"):
        got = (tmp_path / name).read_bytes().split(b"\0")[:-1]
        assert got == [t.encode() for t in texts], name


def test_render_refuses_missing_values_and_stray_dollars(tmp_path: Path) -> None:
    template = tmp_path / "t.txt"
    template.write_text("a $x b ${y}c $$literal\n")
    assert render(template, x="1", y=2) == "a 1 b 2c $literal\n"
    with pytest.raises(KeyError):
        render(template, x="1")
    template.write_text("a $ b\n")
    with pytest.raises(ValueError):
        render(template)

