"""What a finished command prints: the build summary, verdicts, plan, tiers and advice.

The summary is one row per tier in gradient order with the tier's honest state in this run
(built+verified, verified, cached, checked (not run: why), built (not verified), failed,
skipped: why) and stale artifacts kept from an earlier build, its time in this run, its size
and its path. It is the one place skip and failure reasons are repeated in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cli_console import Console, cell_len, escape, plain

out_console = Console()
err_console = Console(stderr=True)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _state(outcome: Any) -> str:
    if outcome.verdict is None:
        return "[yellow]built (not verified)[/yellow]"
    if not outcome.verdict.verified:
        return f"[yellow]checked (not run: {escape(outcome.verdict.why)})[/yellow]"
    if outcome.cached and outcome.replayed:
        return "[cyan]cached[/cyan]"
    return "[green]verified[/green]" if outcome.cached else "[green]built+verified[/green]"


def _lines(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """Aligned rows that never wrap a path (a CI log is not 80 columns wide)."""
    aligned = [r for r in rows if r[2] or r[3]]  # a skip's long reason pads nothing else
    widths = [max((cell_len(plain(r[i])) for r in rows), default=0) for i in range(3)]
    widths[1] = max((cell_len(plain(r[1])) for r in aligned), default=0)
    lines = []
    for tier, state, took, where in rows:
        if not (took or where):
            lines.append(f"  {tier:{widths[0]}}  {state}")
            continue
        pad = widths[1] - cell_len(plain(state))
        lines.append(f"  {tier:{widths[0]}}  {state}{' ' * pad}  {took:>{widths[2]}}  "
                     f"{where}".rstrip())
    return lines


def summary(report: Any, ranks: dict[str, int], quiet: bool = False) -> None:
    """One row per tier of this run (and per stale artifact left from an earlier one)."""
    manifest = report.manifest or {}
    items = {a["tier"]: a for a in manifest.get("artifacts", []) if a["role"] == "artifact"}
    tiers = {*report.outcomes, *report.failures, *report.skipped,
             *(t for t, a in items.items() if a.get("stale"))}
    rows: list[tuple[str, str, str, str]] = []
    for tier in sorted(tiers, key=lambda t: (ranks.get(t, 999), t)):
        item = items.get(tier)
        where = (f"{item['path']} ({human_size(item['size'])})" if item else "")
        if tier in report.outcomes:
            outcome = report.outcomes[tier]
            took = "-" if outcome.cached and outcome.replayed else f"{outcome.seconds:.1f} s"
            rows.append((tier, _state(outcome), took, escape(where)))
        elif tier in report.failures:
            first = report.failures[tier].message.removeprefix(f"{tier}: ").splitlines()[0]
            kept = f"  [dim](kept, stale: {escape(item['path'])})[/dim]" if item else ""
            rows.append((tier, "[red]failed[/red]", "", escape(first[:160]) + kept))
        elif tier in report.skipped:
            rows.append((tier, f"[yellow]skipped: {escape(report.skipped[tier])}[/yellow]", "",
                         ""))
        elif item:
            rows.append((tier, "[yellow]stale[/yellow]", "",
                         f"{escape(item['path'])} [dim](from an earlier build whose inputs "
                         "have changed: rebuild it)[/dim]"))
    if quiet:
        rows = [r for r in rows if r[1] == "[red]failed[/red]"]
    if manifest and not quiet:
        project = manifest["project"]
        out_console.print(f"[bold]{escape(project['name'])} {escape(project['version'])}[/bold]")
    for line in _lines(rows):
        out_console.print(line, soft_wrap=True)
    if manifest and not quiet:
        first = Path(manifest["artifacts"][0]["path"])
        out_console.print(f"  manifest {first.parent.parent / 'manifest.json'}", soft_wrap=True)
    if report.failures and not report.manifest:
        err_console.print("dist/gradient/ was left as it was.")
    elif report.failures:
        err_console.print("the tiers that failed kept their previous artifacts in dist/gradient/ "
                          "(use --atomic to promote nothing unless every tier succeeds)")


def show_verdicts(results: dict[str, Any]) -> None:
    for tier, verdict in results.items():
        state = ("[green]verified[/green]" if verdict["verified"]
                 else "[yellow]checked[/yellow]" if verdict.get("ok") else "[red]FAILED[/red]")
        out_console.print(f"{tier:8} {state} {escape(' '.join(verdict.get('command', [])))}")
        if not verdict.get("ok"):
            if verdict.get("problem"):
                out_console.print(f"  {verdict['problem']}", markup=False)
            if verdict.get("exit_code") is not None:
                out_console.print(f"  exit code {verdict['exit_code']}", markup=False)
            tail = (verdict.get("output") or "").strip().splitlines()[-25:]
            out_console.print("".join(f"    | {line}\n" for line in tail).rstrip("\n"),
                              markup=False)


def show_reproducibility(results: dict[str, Any]) -> None:
    for tier, result in results.items():
        if result["identical"]:
            out_console.print(f"{tier:8} [green]identical[/green] {result.get('sha256', '')}",
                              soft_wrap=True)
        else:
            out_console.print(f"{tier:8} [red]differs[/red]  {result.get('difference', '')}",
                              soft_wrap=True)


def show_plan(items: list[dict[str, Any]], epoch: dict[str, Any] | None = None) -> None:
    if epoch:
        from datetime import UTC, datetime

        day = datetime.fromtimestamp(epoch["value"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        out_console.print(f"SOURCE_DATE_EPOCH {epoch['value']} ({day}), from "
                          f"{escape(epoch['source'])}")
    from rich.table import Table

    table = Table()
    for col in ("node", "needs", "status", "why"):
        table.add_column(col, overflow="fold")
    for item in items:
        status = {"hit": "[green]hit[/green]", "remote hit": "[green]remote hit[/green]",
                  "skip": "[dim]skip[/dim]"}.get(
            item["status"], "[yellow]miss[/yellow]")
        why = escape("; ".join(item["reasons"][:4]))
        if item["missing"]:
            why = (f"[red]missing[/red] {escape('; '.join(item['missing']))}"
                   + (f"; {why}" if why else ""))
        table.add_row(item["node"], ", ".join(item["needs"]), status, why)
    out_console.print(table)


def _version_text(tool: dict[str, Any]) -> str:
    """A tool's version without its name repeated ('debootstrap 1.0.128' -> '1.0.128')."""
    version = str(tool.get("version") or "")
    name = str(tool["name"])
    if version.lower().startswith(name.lower()):
        version = version[len(name):].strip()
    return version.removeprefix("version ").strip()


def show_tiers(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table()
    for col in ("tier", "artifact", "target must provide", "tools", "verifies with"):
        table.add_column(col, overflow="fold")
    for row in rows:
        if row.get("broken"):
            table.add_row(row["tier"], "[red]broken backend[/red]", "", escape(row["broken"]), "")
            continue
        tools = []
        for tool in row["tools"]:
            if tool["present"]:
                tools.append(f"[green]{escape(tool['name'])}[/green] "
                             f"{escape(_version_text(tool))}".strip())
            else:
                tag = "[red]missing[/red]" if tool["required"] else "[yellow]optional[/yellow]"
                tools.append(f"{tag} {escape(tool['name'])}: {escape(tool['get'])}")
        runs = ", ".join(f"{k}: {v if v is not None else '[red]none[/red]'}"
                         for k, v in (row.get("environment") or {}).items()
                         if isinstance(v, str | type(None)))
        table.add_row(row["tier"], escape(row["artifact"]), escape(row["target"]),
                      "\n".join(tools) or "-", runs or "-")
    out_console.print(table)
