"""The CLI's plain console prints, character for character, what rich prints on a console that
is not a terminal: it stands in for rich in every piped run, so rich is the oracle."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console as RichConsole
from rich.markup import escape as rich_escape
from rich.text import Text

from gradient_build import cli_console

SAMPLES = [
    "plain words",
    "[bold]hello-app 0.1.0[/bold]",
    "  oci      [yellow]built (not verified)[/yellow]  0.1 s  dist/gradient/oci/x.tar (35.8 MB)",
    "[yellow]checked (not run: no docker \\[daemon])[/yellow]",
    "a \\[not a tag] b, weird [ bracket, [x] [X] [1] [/x]",
    "[red]FAILED[/red]  it broke\n    | line one\n    | a\ttab\t\tand more",
    "[dim]x[/dim] [link=https://example.org]a link[/link] [@click]handler[/]",
    "tabs\tat\t1\t12\t123\t1234567\t",
    "control: cr\rbell\x07bs\x08vt\x0bff\x0c esc\x1b[31m kept",
    ":warning: sha256:abc: :rocket:-emoji :not_an_emoji_name: x",
    "trailing spaces   ",
    "",
    "a\n\nb\n",
    "\\\\[bold]two backslashes before a tag[/bold]",
    "ends with a backslash \\",
    "wide 日本語 and e\u0301 combining",
    "[bold]" + "x" * 300 + "[/bold]",
]
CORPUS = SAMPLES + [rich_escape(s) for s in SAMPLES]


def _rich(text: str, markup: bool) -> str:
    out = io.StringIO()
    RichConsole(file=out, highlight=False, soft_wrap=True).print(text, markup=markup)
    return out.getvalue()


def _ours(text: str, markup: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    console = cli_console.Console()
    assert not console.is_terminal
    console.print(text, markup=markup)
    return out.getvalue()


@pytest.mark.parametrize("markup", [True, False])
@pytest.mark.parametrize("text", CORPUS)
def test_plain_lines_are_what_rich_prints_when_piped(text: str, markup: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    assert _ours(text, markup, monkeypatch) == _rich(text, markup)


@pytest.mark.parametrize("text", SAMPLES)
def test_escape_and_width_agree_with_rich(text: str) -> None:
    assert cli_console.escape(text) == rich_escape(text)
    assert cli_console.cell_len(cli_console.plain(text)) == Text.from_markup(text).cell_len


def test_force_color_hands_the_line_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    console = cli_console.Console()
    assert console.is_terminal
    console.print("[bold]styled[/bold]")
    assert "\x1b[1m" in out.getvalue()  # rich's bold: rich did the printing


def test_a_piped_build_command_leaves_rich_unimported() -> None:
    """The point of the plain console: `gradient build` into a pipe never loads rich."""
    code = ("import sys; from gradient_build.cli_summary import out_console;"
            "from gradient_build.cli_render import Renderer;"
            "Renderer('human').emit(__import__('gradient_build.events').events.Event("
            "'built', 'wheel', 'x.whl')); out_console.print('[bold]done[/bold]');"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={"PATH": "/usr/bin:/bin"})
    assert proc.stdout.splitlines() == ["done", "[]"]
    assert proc.stderr == "wheel    built   x.whl\n"
