"""The CLI's consoles: rich where the output is a terminal (or FORCE_COLOR / TTY_COMPATIBLE
ask for styles), plain text otherwise, without importing rich.

A piped command (a CI log, `| tee`, a Makefile, a benchmark) is most of gradient's runs, and
rich's console costs ~20 ms of imports each time for text it prints unstyled anyway. Plain
text here is what rich prints on a console that is not a terminal: markup tags dropped,
escaped brackets restored, emoji codes replaced, the control codes rich strips (BEL, BS, VT,
FF, CR) stripped, tabs expanded to 8 columns, no wrapping (the CLI's consoles soft-wrap),
a flush per line. tests/test_cli_console.py holds it to rich's own output.
"""

from __future__ import annotations

import os
import re
import sys
from re import Match
from typing import Any, TextIO

_TAGS = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")  # rich.markup.RE_TAGS
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")  # rich.markup.escape's
_EMOJI = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")  # rich._emoji_replace's
_STRIPPED: dict[int, None] = dict.fromkeys((7, 8, 11, 12, 13))  # rich.control's


def escape(markup: str) -> str:
    """Text that prints as itself through markup (rich.markup.escape)."""
    def doubled(match: Match[str]) -> str:
        backslashes, text = match.groups()
        return f"{backslashes}{backslashes}\\{text}"

    markup = _ESCAPE.sub(doubled, markup)
    if markup.endswith("\\") and not markup.endswith("\\\\"):
        return markup + "\\"
    return markup


def _emoji(text: str) -> str:
    if not _EMOJI.search(text):  # rich's table of codes is ~3 ms to import: only if needed
        return text
    from rich._emoji_replace import _emoji_replace

    return str(_emoji_replace(text))


def plain(markup: str) -> str:
    """The characters rich shows of `markup`: its tags gone, its escapes undone (the parse of
    rich.markup.render, without the styles)."""
    if "[" not in markup:
        return _emoji(markup).translate(_STRIPPED)
    parts: list[str] = []
    position = 0
    for match in _TAGS.finditer(markup):
        full, escapes, _tag = match.groups()
        start, end = match.span()
        if start > position:
            parts.append(markup[position:start])
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            if backslashes:
                parts.append("\\" * backslashes)
            if escaped:
                parts.append(full[len(escapes):])
    if position < len(markup):
        parts.append(markup[position:])
    return "".join(_emoji(p.replace("\\[", "[")) for p in parts).translate(_STRIPPED)


def cell_len(text: str) -> int:
    """Terminal columns `text` takes (rich.cells.cell_len; loaded only beyond plain ASCII)."""
    if text.isascii() and text.isprintable():
        return len(text)
    from rich.cells import cell_len as columns

    return int(columns(text))


class Console:
    """What the CLI uses of rich's Console (`print`, `is_terminal`): rich itself for a
    terminal, or to print anything but text (a table); plain lines otherwise. The stream is
    looked up at each print, as rich does, so a replaced sys.stdout is written to."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr
        self._rich: Any = None

    @property
    def file(self) -> TextIO:
        return sys.stderr if self.stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        """rich's rule (Console.is_terminal) for a console nobody forced either way."""
        if self._rich is not None:
            return bool(self._rich.is_terminal)
        if "IPython" in sys.modules or getattr(sys.stdin, "__module__", "").startswith(
                "idlelib"):
            return bool(self.rich().is_terminal)  # rich's special cases: let it decide
        compatible = os.environ.get("TTY_COMPATIBLE", "")
        if compatible in ("0", "1"):
            return compatible == "1"
        force = os.environ.get("FORCE_COLOR")
        if force is not None:
            return force != ""
        isatty = getattr(self.file, "isatty", None)
        try:
            return False if isatty is None else bool(isatty())
        except ValueError:
            return False

    def rich(self) -> Any:
        """The rich console behind this one (for a live display, or a table)."""
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(stderr=self.stderr, highlight=False, soft_wrap=True)
        return self._rich

    def print(self, text: Any, *, markup: bool = True, soft_wrap: bool = True) -> None:
        if not isinstance(text, str) or not soft_wrap or self.is_terminal:
            self.rich().print(text, markup=markup, soft_wrap=soft_wrap)
            return
        line = plain(text) if markup else _emoji(text).translate(_STRIPPED)
        if "\t" in line:
            line = line.expandtabs(8)
        stream = self.file
        stream.write(line + "\n")
        stream.flush()
