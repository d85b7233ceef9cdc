"""Terminal and CI rendering of the core's events: rich in a terminal, plain lines when piped,
JSON lines in CI."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from .cli_console import Console, escape
from .errors import GradientError
from .events import Event

err_console = Console(stderr=True)
out_console = Console()


VERBOSE_HINT = "(run with -v, or --log-format json, for the traceback)"


def error_text(err: GradientError, verbose: bool = False) -> str:
    text = f"error: {err.message}\n"
    if err.internal and not verbose:
        return text + f"  {VERBOSE_HINT}\n"
    if err.detail:
        text += "".join(f"  | {line}\n" for line in err.detail.splitlines()[-40:])
    return text


def crash_text(exc: BaseException, verbose: bool, as_json: bool) -> str:
    """What a user sees of a bug: one line; the traceback only when asked for."""
    import json
    import traceback

    message = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))
    text = f"error: internal error: {message}\n"
    if as_json:
        text += json.dumps({"event": message, "kind": "error", "traceback": trace}) + "\n"
    return text + (trace if verbose else "" if as_json else f"  {VERBOSE_HINT}\n")


class JsonLines:
    """One JSON object per line: the event's fields, `event` (its message) and an ISO UTC
    `timestamp`, the shape structlog's JSONRenderer gave, without its ~0.1 s of imports on
    every CI run."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def info(self, event: str, **fields: Any) -> None:
        import json

        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        line = json.dumps({**fields, "event": event, "timestamp": now}, default=str)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class Renderer:
    """Turns events into output; safe to call from the engine's worker threads.

    Three shapes: JSON lines (CI, --log-format json) carry every event; in a terminal a live
    display shows each node's current step; piped (a CI log, `| tee`) one plain line per step
    as it starts, and a heartbeat every 10 s (GRADIENT_HEARTBEAT_SECONDS) for a longer step. Quiet
    (-q) prints failures only.
    """

    def __init__(self, log_format: str, *, quiet: bool = False, verbose: bool = False) -> None:
        self.heartbeat = float(os.environ.get("GRADIENT_HEARTBEAT_SECONDS") or 10)
        self.json = log_format == "json"
        self.quiet = quiet
        self.verbose = verbose
        self.lock = threading.Lock()
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.logger: JsonLines | None = None
        self.steps: dict[str, tuple[str, float, float]] = {}  # tier: (step, since, last said)
        self.started: dict[str, float] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if self.json:
            self.logger = JsonLines(sys.stderr)
        elif err_console.is_terminal and not quiet:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[tier]:8}"),
                                     TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=err_console.rich(), transient=True)

    @property
    def plain(self) -> bool:
        """Piped human output: no live display, so steps and heartbeats are lines."""
        return not self.json and self.progress is None and not self.quiet

    def __enter__(self) -> Renderer:
        if self.progress:
            self.progress.start()
        if self.plain or self.json:
            self._beat = threading.Thread(target=self._heartbeats, daemon=True)
            self._beat.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self.progress:
            self.progress.stop()
            self.progress = None

    def backend_warnings(self, texts: list[str]) -> None:
        """The build backend's own warnings: in the JSON log, in the terminal only with -v."""
        for text in texts:
            if self.logger is not None:
                self.logger.info(text, kind="backend-warning", tier=None)
            elif self.verbose:
                err_console.print(f"[yellow]build backend warning[/yellow] {escape(text)}")

    def _heartbeats(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat / 2)):
            now = time.monotonic()
            with self.lock:
                for tier, (step, since, said) in list(self.steps.items()):
                    if now - said >= self.heartbeat:
                        self.steps[tier] = (step, since, now)
                        self._say(Event("heartbeat", tier, step,
                                        {"step_seconds": round(now - since, 1),
                                         "seconds": round(now - self.started.get(tier, since),
                                                          1)}))

    def emit(self, event: Event) -> None:
        with self.lock:
            tier = event.tier or ""
            now = time.monotonic()
            if event.kind == "start" and tier:
                self.started[tier] = now
            if event.kind == "step" and tier:
                self.started.setdefault(tier, now)
                self.steps[tier] = (event.message, now, now)
            elif event.kind in ("built", "cached", "verified", "checked", "failed", "skipped"):
                self.steps.pop(tier, None)
            if self.progress and tier:
                if tier not in self.tasks:
                    self.tasks[tier] = self.progress.add_task(
                        escape(event.message), tier=tier, total=None)
                self.progress.update(self.tasks[tier], description=escape(event.message))
            self._say(event)
            if self.progress and tier and event.kind in ("verified", "checked", "failed",
                                                          "skipped"):
                self.progress.remove_task(self.tasks.pop(tier))

    def _say(self, event: Event) -> None:
        if self.logger is not None:
            fields = {k: v for k, v in event.data.items() if k not in ("manifest",)}
            self.logger.info(event.message, kind=event.kind, tier=event.tier, **fields)
            return
        if self.quiet and event.kind != "failed":
            return
        line = self._line(event)
        if line:
            err_console.print(line)

    def _line(self, event: Event) -> str | None:
        message = escape(event.message)
        tier = f"[bold]{event.tier:8}[/bold]" if event.tier else ""
        if event.kind in ("step", "heartbeat") and self.plain and event.tier:
            took = time.monotonic() - self.started.get(event.tier, time.monotonic())
            still = "still: " if event.kind == "heartbeat" else ""
            return f"{tier} {still}{message}  [dim]{took:.1f} s[/dim]"
        if event.kind == "backend-output":
            return f"{tier} [dim]{message}[/dim]" if self.verbose else None
        if event.kind == "start":
            why = escape("; ".join(event.data.get("reasons", [])[:3]))
            return f"{tier} building ({why})" if why else f"{tier} building"
        if event.kind == "cached":
            return f"{tier} [cyan]cached[/cyan]  {message}"
        if event.kind == "built":
            return f"{tier} built   {message}"
        if event.kind == "verified":
            runtime = event.data.get("runtime")
            note = f" (runtime {runtime})" if runtime else ""
            if event.data.get("replayed") and event.data.get("remote"):
                return (f"{tier} [green]verified[/green] (the same artifact, proven by the build "
                        f"that stored it in the remote cache){note}")
            if event.data.get("replayed"):
                return (f"{tier} [green]verified[/green] (the same artifact, already proven "
                        f"here){note}")
            return f"{tier} [green]verified[/green] in {message}{note}"
        if event.kind == "checked":
            return f"{tier} [yellow]checked[/yellow] (not run: {message})"
        if event.kind == "failed":
            detail = escape(event.data.get("detail") or "")
            if event.data.get("internal") and not self.verbose:
                detail = VERBOSE_HINT
            lines = "".join(f"\n    | {x}" for x in detail.splitlines()[-25:])
            message = escape(event.message.removeprefix(f"{event.tier}: "))
            return f"{tier} [red]FAILED[/red]  {message}{lines}"
        if event.kind == "skipped":
            return None  # the summary gives the reason, once
        if event.kind == "warning":
            return f"{tier} [yellow]warning[/yellow] {message}"
        return None

    def summary(self, report: Any, ranks: dict[str, int]) -> None:
        from .cli_summary import summary

        summary(report, ranks, quiet=self.quiet)
