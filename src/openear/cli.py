"""The ``openear`` command: a thin layer over the library. Errors print one line and exit non-zero."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from openear import settings as settings_mod
from openear.errors import OpenearError
from openear.models import RunStats

app = typer.Typer(
    name="openear",
    help="Hear what drivers say in public, without watching them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) is not cut at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Workspace folder (default: $OPENEAR_HOME or ./openear-data).", show_default=False),
]


@app.callback()
def main(ctx: typer.Context, home: HomeOption = None) -> None:
    """openear: collect, guard, enrich and report on public feedback."""
    ctx.obj = {"home": home}


def _home(ctx: typer.Context, home: Path | None) -> Path:
    return settings_mod.resolve_home(home if home is not None else (ctx.obj or {}).get("home"))


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except OpenearError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as fh:
            return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return None


def stats_table(title: str, rows: dict[str, RunStats]) -> Table:
    """The summary table printed at the end of an import or demo; rejection reasons go in the caption."""
    reasons: dict[str, int] = {}
    withheld: dict[str, int] = {}
    for s in rows.values():
        for k, v in s.rejected.items():
            reasons[k] = reasons.get(k, 0) + v
        for k, v in s.withheld_by_reason.items():
            withheld[k] = withheld.get(k, 0) + v
    caption = []
    if reasons:
        caption.append("rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    if withheld:
        caption.append("withheld: " + ", ".join(f"{k} {v}" for k, v in sorted(withheld.items())))
    table = Table(title=title, title_justify="left", caption="; ".join(caption) or None, caption_justify="left")
    table.add_column("source", no_wrap=True)
    for col in ("read", "stored", "unchanged", "rejected", "withheld", "scrubbed", "invalid"):
        table.add_column(col, justify="right", no_wrap=True)
    for name, s in rows.items():
        table.add_row(name, str(s.read), str(s.stored), str(s.unchanged), str(s.rejected_total), str(s.withheld),
                      str(s.scrubbed), str(s.invalid))
    return table


# ------------------------------------------------------------------------------------------------------------
@app.command()
def init(ctx: typer.Context, home: HomeOption = None) -> None:
    """Create a workspace: openear.toml, the SQLite database, a pseudonym key (0600), the taxonomy, an admin."""
    from openear.workspace import init_workspace

    with _errors():
        result = init_workspace(_home(ctx, home))
    s = result.settings
    console.print(f"Workspace: [bold]{s.home}[/]")
    console.print(f"  config     {s.config_path}" + ("  (created)" if "config" in result.created else ""))
    console.print(f"  database   {settings_mod.mask_url(s.database_url)}"
                  + ("  (created)" if "database" in result.created else "  (migrated)"))
    console.print(f"  key        {s.key_path}" + ("  (created, mode 0600)" if "key" in result.created else ""))
    console.print(f"  taxonomy   {s.taxonomy_path}" + ("  (created)" if "taxonomy" in result.created else ""))
    if result.admin_password:
        console.print(
            f"\nAdmin user [bold]{result.admin_username}[/] created. One-time password (shown only now):\n"
            f"  [bold]{result.admin_password}[/]",
            highlight=False,
        )


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The file to import.", show_default=False)],
    source: Annotated[str, typer.Option("--source", help="Source name the items belong to.")],
    visibility: Annotated[
        str | None, typer.Option("--visibility", help="public or consented (required unless declared in config).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl, csv, zeeschuimer or 4cat (default: from the file).")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="social or news (default: social).")] = None,
    country: Annotated[str | None, typer.Option("--country", help="Country hint, e.g. US, GB, ES.")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="Language hint, e.g. en, es.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Import posts from a file through the guard into the store. Importing the same file twice changes nothing."""
    from openear.connectors import files
    from openear.pipeline import import_file
    from openear.settings import SourceSpec
    from openear.store import open_store

    with _errors():
        settings = settings_mod.load(_home(ctx, home))
        declared = settings.source(source)
        if fmt is not None and fmt not in files.FORMATS:
            _fail(f"--format: must be one of {', '.join(files.FORMATS)}, not {fmt!r}")
        if visibility is not None and visibility not in ("public", "consented"):
            _fail(f"--visibility: must be 'public' or 'consented', not {visibility!r} "
                  "(openear never collects private or closed groups)")
        if kind is not None and kind not in ("social", "news"):
            _fail(f"--kind: must be 'social' or 'news', not {kind!r}")
        if declared is None and visibility is None:
            _fail(f"source {source!r} is not declared in {settings.config_path}; "
                  "pass --visibility public or --visibility consented to declare it")
        if declared is not None and visibility is not None and visibility != declared.visibility:
            _fail(f"source {source!r} is declared {declared.visibility!r} in {settings.config_path}, "
                  f"not {visibility!r}")
        spec = SourceSpec(
            name=source,
            connector=declared.connector if declared else "files",
            visibility=visibility or (declared.visibility if declared else "public"),
            kind=kind or (declared.kind if declared else "social"),
            country=country or (declared.country if declared else None),
            lang=lang or (declared.lang if declared else None),
        )
        store = open_store(settings.database_url)
        total = _count_lines(file) if file.is_file() else None
        with _progress() as bar:
            task = bar.add_task(f"import {file.name}", total=total)
            _, stats = import_file(settings, store, file, fmt, spec, progress=lambda n: bar.advance(task, n))
        store.close()
    for line in stats.errors:
        err.print(line, highlight=False, markup=False, soft_wrap=True)
    if as_json:
        print(json.dumps({"source": source, **stats.as_dict()}))
    else:
        console.print(stats_table(f"Imported {file}", {source: stats}))
    if stats.invalid:
        raise typer.Exit(1)


@app.command()
def report(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="Start: 30d, 12h or a date (YYYY-MM-DD).")] = "30d",
    until: Annotated[str | None, typer.Option("--until", help="End date (exclusive), default now.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, markdown (md) or csv.")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    home: HomeOption = None,
) -> None:
    """Write a report for a period: volume, categories, sentiment, clusters, media and the guard's counts."""
    from openear import audit, reports
    from openear.store import open_store
    from openear.store.queries import Period

    fmt = {"md": "markdown"}.get(fmt, fmt)
    if fmt not in ("html", "markdown", "csv"):
        _fail(f"--format: must be html, markdown or csv, not {fmt!r}")
    with _errors():
        settings = settings_mod.load(_home(ctx, home))
        try:
            period = Period.parse_since(since)
            if until:
                period = Period(period.since, Period.parse_since(until).since)
        except ValueError as exc:
            _fail(f"--since/--until: {exc}")
        store = open_store(settings.database_url)
        with store.connect() as conn:
            rep = reports.build_report(conn, period, settings_like=settings)
        with store.begin() as conn:
            audit.record(conn, "cli", "report", target=str(output or "stdout"), detail=f"{fmt} since {since}")
        store.close()
        if output is None:
            sys.stdout.write(reports.render(rep, fmt))
        else:
            reports.write_report(rep, fmt, output)
            console.print(f"Report written to [bold]{output}[/]")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    home: HomeOption = None,
) -> None:
    """Serve the dashboard (login required; /transparency is public)."""
    from openear.web.app import serve as run_server

    with _errors():
        settings = settings_mod.load(_home(ctx, home))
        from openear.store import open_store

        open_store(settings.database_url).close()
        console.print(f"Serving openear on [bold]http://{host}:{port}/[/]  (Ctrl+C to stop)")
        run_server(settings, host=host, port=port)


@app.command()
def demo(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after the report.")] = False,
    home: Annotated[Path, typer.Option("--home", help="Demo workspace (recreated).")] = Path("openear-demo"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """A fresh workspace, the bundled synthetic sample through the pipeline, a report, then the dashboard."""
    from openear.demo import run_demo, sample_path

    home = home.resolve()
    total = _count_lines(sample_path())
    with _errors(), _progress() as bar:
        task = bar.add_task("demo: import sample", total=total)
        result = run_demo(home, progress=lambda _name, n: bar.advance(task, n))
    console.print(stats_table("Demo import (synthetic sample)", result.stats))
    for path in result.reports:
        console.print(f"Report: [bold]{path}[/]")
    console.print(f"Workspace: {home}")
    console.print(
        f"Login: user [bold]{result.init.admin_username}[/], password [bold]{result.init.admin_password}[/]",
        highlight=False,
    )
    if no_serve:
        return
    from openear.web.app import serve as run_server

    console.print(f"Dashboard: [bold]http://{host}:{port}/[/]  (Ctrl+C to stop)")
    run_server(result.init.settings, host=host, port=port)


@app.command()
def purge(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    home: HomeOption = None,
) -> None:
    """Delete posts older than the retention limit (retention_days in openear.toml, default 180)."""
    from datetime import UTC, datetime, timedelta

    from openear import audit
    from openear.store import open_store

    with _errors():
        settings = settings_mod.load(_home(ctx, home))
        store = open_store(settings.database_url)
        before = datetime.now(UTC) - timedelta(days=settings.retention_days)
        done = store.purge(before, dry_run=dry_run)
        if not dry_run:
            with store.begin() as conn:
                audit.record(conn, "cli", "purge", target=f"before {before:%Y-%m-%d}", detail=json.dumps(done))
        store.close()
    verb = "Would delete" if dry_run else "Deleted"
    console.print(f"{verb} {done['posts']} posts created before {before:%Y-%m-%d} "
                  f"(retention {settings.retention_days} days).")


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help='Query, e.g. \'(tip OR tips) NEAR/3 missing lang:en -refund\'.')],
    limit: Annotated[int, typer.Option("--limit", help="Most posts to print.", min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of posts.")] = False,
    home: HomeOption = None,
) -> None:
    """Search stored posts with the query language (docs/query-language.md), newest first."""
    from openear import audit
    from openear.query import parse
    from openear.query import search as run_search
    from openear.store import open_store

    with _errors():
        settings = settings_mod.load(_home(ctx, home))
        parsed = parse(query)
        store = open_store(settings.database_url)
        with store.connect() as conn:
            rows = run_search(conn, parsed, limit=limit)
        with store.begin() as conn:
            audit.record(conn, "cli", "search", target=query, detail=f"{len(rows)} posts")
        store.close()
    if as_json:
        keys = ("source", "external_id", "kind", "created_at", "lang", "country", "category", "sentiment", "title",
                "text", "url")
        print(json.dumps([{k: (r[k].isoformat() if k == "created_at" else r[k]) for k in keys} for r in rows],
                         ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} posts matching {query}", title_justify="left")
    for col in ("created_at", "source", "category", "text"):
        table.add_column(col, overflow="fold")
    for r in rows:
        body = f"{r['title']}: {r['text']}" if r["title"] and r["kind"] == "news" else r["text"]
        table.add_row(f"{r['created_at']:%Y-%m-%d %H:%M}", r["source"], r["category"] or "",
                      body if len(body) <= 200 else body[:199] + "…")
    console.print(table)


@app.command("eval")
def eval_(
    file: Annotated[
        Path, typer.Argument(help="Labelled JSON Lines (text, lang, kind, categories, primary, sentiment).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure the shipped enrichers and the guard's protected-topic detector on a labelled file."""
    from openear.evaluate import evaluate, format_table

    with _errors():
        result = evaluate(file)
    if as_json:
        print(json.dumps(result))
    else:
        console.print(format_table(result))


if __name__ == "__main__":  # pragma: no cover
    app()
