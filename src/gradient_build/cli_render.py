"""Terminal and CI rendering of the core's events: rich in a terminal, JSON lines in CI."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import GradientError
from .events import Event

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


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


class Renderer:
    """Turns events into output; safe to call from the engine's worker threads."""

    def __init__(self, log_format: str, *, quiet: bool = False, verbose: bool = False) -> None:
        self.json = log_format == "json"
        self.quiet = quiet
        self.verbose = verbose
        self.lock = threading.Lock()
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.logger: Any = None
        if self.json:
            import structlog

            structlog.configure(
                processors=[structlog.processors.TimeStamper(fmt="iso"),
                            structlog.processors.JSONRenderer()],
                logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            )
            self.logger = structlog.get_logger()
        elif err_console.is_terminal and not quiet:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[tier]:8}"),
                                     TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=err_console, transient=True)

    def __enter__(self) -> Renderer:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
            self.progress = None

    def emit(self, event: Event) -> None:
        with self.lock:
            if self.logger is not None:
                fields = {k: v for k, v in event.data.items() if k not in ("manifest",)}
                self.logger.info(event.message, kind=event.kind, tier=event.tier, **fields)
                return
            tier = event.tier or ""
            if self.progress and tier:
                if tier not in self.tasks:
                    self.tasks[tier] = self.progress.add_task(
                        escape(event.message), tier=tier, total=None)
                self.progress.update(self.tasks[tier], description=escape(event.message))
            line = self._line(event)
            if line and not self.quiet:
                err_console.print(line)
            if self.progress and tier and event.kind in ("verified", "checked", "failed",
                                                          "skipped"):
                self.progress.remove_task(self.tasks.pop(tier))

    def _line(self, event: Event) -> str | None:
        message = escape(event.message)
        tier = f"[bold]{event.tier:8}[/bold]" if event.tier else ""
        if event.kind == "start":
            why = escape("; ".join(event.data.get("reasons", [])[:3]))
            return f"{tier} building ({why})" if why else f"{tier} building"
        if event.kind == "cached":
            return f"{tier} [cyan]cached[/cyan]  {message}"
        if event.kind == "built":
            return f"{tier} built   {message}"
        if event.kind == "verified" and event.data.get("replayed"):
            return f"{tier} [green]verified[/green] (the same artifact, already proven here)"
        if event.kind == "verified":
            runtime = event.data.get("runtime")
            note = f" (runtime {runtime})" if runtime else ""
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
            return f"{tier} [yellow]skipped[/yellow] {message}"
        if event.kind == "warning":
            return f"{tier} [yellow]warning[/yellow] {message}"
        return None

    def summary(self, report: Any, root: Path) -> None:
        manifest = report.manifest
        if manifest:
            project = manifest["project"]
            out_console.print(f"[bold]{project['name']} {project['version']}[/bold]")
            for item in manifest["artifacts"]:
                if item["role"] != "artifact":
                    continue
                level = (item.get("verify") or {}).get("level")
                state = ("[green]verified[/green]" if item.get("verified")
                         else "[yellow]checked[/yellow] " if level == "checked"
                         else "[yellow]built[/yellow]   ")
                cached = " cached" if item.get("cached") else ""
                out_console.print(f"  {state} {item['tier']:8} {item['path']} "
                                  f"({human_size(item['size'])}{cached})", soft_wrap=True)
            first = Path(manifest["artifacts"][0]["path"])
            out_console.print(f"  manifest {first.parent.parent / 'manifest.json'}",
                              soft_wrap=True)
        for err in report.failures.values():
            err_console.print(f"[red]failed[/red] {escape(err.message)}")
        for tier, why in report.skipped.items():
            err_console.print(f"[yellow]skipped[/yellow] {tier}: {escape(why)}")
        if report.failures:
            err_console.print("dist/gradient/ was left as it was.")

    def show_verdicts(self, results: dict[str, Any]) -> None:
        for tier, verdict in results.items():
            state = ("[green]verified[/green]" if verdict["verified"]
                     else "[yellow]checked[/yellow]" if verdict.get("ok") else "[red]FAILED[/red]")
            out_console.print(f"{tier:8} {state} {escape(' '.join(verdict.get('command', [])))}")
            if not verdict.get("ok"):
                if verdict.get("problem"):
                    out_console.print(f"  {verdict['problem']}", markup=False)
                out_console.print(verdict.get("output", ""), markup=False)

    def show_reproducibility(self, results: dict[str, Any]) -> None:
        for tier, result in results.items():
            if result["identical"]:
                out_console.print(f"{tier:8} [green]identical[/green] {result.get('sha256', '')}",
                                  soft_wrap=True)
            else:
                out_console.print(f"{tier:8} [red]differs[/red]  {result.get('difference', '')}",
                                  soft_wrap=True)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def show_plan(items: list[dict[str, Any]], epoch: dict[str, Any] | None = None) -> None:
    if epoch:
        from datetime import UTC, datetime

        day = datetime.fromtimestamp(epoch["value"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        out_console.print(f"SOURCE_DATE_EPOCH {epoch['value']} ({day}), from "
                          f"{escape(epoch['source'])}")
    table = Table()
    for col in ("node", "needs", "status", "why"):
        table.add_column(col)
    for item in items:
        status = {"hit": "[green]hit[/green]", "skip": "[dim]skip[/dim]"}.get(
            item["status"], "[yellow]miss[/yellow]")
        why = "; ".join(item["reasons"][:4])
        if item["missing"]:
            why = f"[red]missing[/red] {'; '.join(item['missing'])}" + (f"; {why}" if why else "")
        table.add_row(item["node"], ", ".join(item["needs"]), status, why)
    out_console.print(table)


def show_tiers(rows: list[dict[str, Any]]) -> None:
    table = Table()
    for col in ("tier", "artifact", "target must provide", "tools"):
        table.add_column(col)
    for row in rows:
        if row.get("broken"):
            table.add_row(row["tier"], "[red]broken backend[/red]", "", escape(row["broken"]))
            continue
        tools = []
        for tool in row["tools"]:
            if tool["present"]:
                tools.append(f"[green]{tool['name']}[/green] {tool['version'] or ''}".strip())
            else:
                tag = "[red]missing[/red]" if tool["required"] else "[yellow]optional[/yellow]"
                tools.append(f"{tag} {tool['name']}: {tool['get']}")
        table.add_row(row["tier"], row["artifact"], row["target"], "\n".join(tools) or "-")
    out_console.print(table)


def show_advice(chosen: str | None, steps: list[Any]) -> None:
    for step in steps:
        mark = "[green]fits[/green]" if step.fits else "[dim]no[/dim]  "
        star = " [bold]<- recommended[/bold]" if step.tier == chosen else ""
        out_console.print(f"{mark} {step.tier:8} {escape(step.reason)}{star}")
    if chosen is None:
        out_console.print("no tier fits this target")
