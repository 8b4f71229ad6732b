"""The ``openear`` command: a thin layer over the library. Errors print one line and exit non-zero."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from openear import settings as settings_mod
from openear.errors import OpenearError
from openear.models import RunStats

if TYPE_CHECKING:
    from datetime import datetime

    from openear.models import RunStats
    from openear.settings import Settings
    from openear.store import Store

# Piped output (CI logs, files) is not cut at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)  # "posts.jsonl:100:" is no 💯
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160, emoji=False)


class _Cli(TyperGroup):
    """The root command: a usage error anywhere below it (a missing argument, ``--limit abc``, an unknown command
    or option) prints one line, ``error: openear import: Missing argument 'file'. Try 'openear import --help'.``,
    and exits 2 as Click does, instead of Click's usage lines and rich error box. ``--help`` (and a group called
    without a command) still prints the rich help."""

    def make_context(self, info_name: str | None, args: list[str], parent: typer.Context | None = None,
                     **extra: object) -> typer.Context:
        with _usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: typer.Context) -> object:
        with _usage_errors():
            return super().invoke(ctx)


@contextmanager
def _usage_errors() -> Iterator[None]:
    # typer (pinned) vendors Click: its exceptions, not the click package's, are the ones raised
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        yield
    except NoArgsIsHelpError:  # `openear cases`: the group's help, as before
        raise
    except ClickException as exc:
        message = " ".join(exc.format_message().split())
        cause = exc.__cause__  # typer's value checks (pydantic) keep the value given: name it
        given = getattr(cause, "errors", None)
        if callable(given):
            try:
                value = given()[0].get("input")
            except (IndexError, TypeError, AttributeError):
                value = None
            if isinstance(value, str) and repr(value) not in message:
                head, sep, rest = message.partition(": ")
                message = f"{head}{sep}{value!r}: {rest[:1].lower()}{rest[1:]}" if sep else f"{message} ({value!r})"
        if not message.endswith((".", "?", "!")):
            message += "."
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" Try '{ctx.command_path} --help'." if ctx is not None and exc.exit_code == 2 else ""
        err.print(Text.assemble(("error:", "bold red"), f" {where}{message}{hint}"), highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="openear",
    cls=_Cli,
    help="Hear what drivers say in public, without watching them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
    """Print ``error: MESSAGE`` (the message as written: brackets such as ``[[teams]]`` are not markup) and exit."""
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        yield
    except OpenearError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
    except (OperationalError, ProgrammingError) as exc:
        missing = _MISSING.search(str(exc.orig))
        if missing is None:
            raise
        # a workspace made by an older openear, not yet migrated: say how, rather than SQL's traceback
        what = missing.group(1) or missing.group(2)
        _fail(f"the database has no {what}: its schema is older than this openear; run 'openear init' for this "
              "workspace to upgrade it in place (safe to repeat)")


_MISSING = re.compile(r'no such (?:table|column): (\S+)|(?:relation|column) "?([^"\s]+)"? does not exist')


def _print_errors(stats: RunStats) -> None:
    """The invalid records' messages on stderr, one a line, and how many more were not kept."""
    for line in stats.errors:
        err.print(line, highlight=False, markup=False, soft_wrap=True)
    if stats.errors_left_out:
        err.print(f"... and {stats.errors_left_out:,} more invalid records (the first {len(stats.errors):,} are "
                  "listed above)", highlight=False, markup=False)


def _open_store(settings: settings_mod.Settings) -> Store:
    """The workspace's store, as it is: a SQLite file that does not exist is a one-line error (with how to create
    one), not a new empty file (which SQLite would make on connecting, and which every command then refuses as
    having no schema). Only ``openear init``, ``demo`` and ``restore`` create the store."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from openear.errors import ConfigError
    from openear.store import open_store

    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        url = None  # open_store names the bad URL
    if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not url.query.get("uri") and not Path(url.database).exists():
        raise ConfigError(f"no database at {url.database}: run 'openear init' to create this workspace's store "
                          f"(or 'openear restore FILE' from a backup)")
    return open_store(settings.database_url)


class _Workspace:
    """A command's settings, and its store: opened where the command first asks for it (so that its checks keep
    their order), closed when the command's block ends, however it ends."""

    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = _open_store(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@contextmanager
def _workspace(ctx: typer.Context, home: Path | None) -> Iterator[_Workspace]:
    """The workspace of ``--home`` inside :func:`_errors` (an :class:`OpenearError` prints one line, exit 2)."""
    with _errors():
        ws = _Workspace(settings_mod.load(_home(ctx, home)))
        try:
            yield ws
        finally:
            ws.close()


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


MODE_HELP = ("Sentiment model: fast, accurate (opt-in, slower) or rules (bulk backfills: no sentence encoder); "
             "default: the workspace's sentiment_mode (fast).")


def _mode(mode: str | None) -> str | None:
    """``--mode`` checked; ``None`` (not given) leaves the choice to the workspace's ``sentiment_mode``."""
    from openear.settings import SENTIMENT_MODES as MODES

    if mode is not None and mode not in MODES:
        _fail(f"--mode: must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _interrupted(message: str) -> None:
    """After Ctrl+C in a resumable command: say what is kept and how to go on; exit 130 as shells expect."""
    err.print(f"Interrupted: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(130)


def _retention_days(settings: Settings, store: Store) -> int:
    """The retention limit ingest applied, in days (the admin Settings page's value wins)."""
    from openear.pipeline import retention_of

    return retention_of(settings, store).days


def _iso(value: object) -> object:
    """A time for ``--json``: ISO 8601 in UTC with its offset (SQLite hands back naive UTC times, PostgreSQL aware
    ones: both print the same); a date as ``YYYY-MM-DD``; ``None`` as is."""
    from datetime import datetime

    from openear.store import to_aware_utc

    if isinstance(value, datetime):
        return to_aware_utc(value).isoformat()
    return value.isoformat() if hasattr(value, "isoformat") else value


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as fh:
            return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return None


def stats_table(title: str, rows: dict[str, RunStats], retention_days: int | None = None) -> Table:
    """The summary table printed at the end of an import or demo; rejection reasons go in the caption, and the
    posts dropped as older than the retention limit (``retention_days``, named when given)."""
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
    expired = sum(s.expired for s in rows.values())
    if expired:
        limit = f" of {retention_days} days" if retention_days is not None else ""
        caption.append(f"older than the retention limit{limit}, not stored: {expired}")
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
    """Create or upgrade a workspace: openear.toml, the database (SQLite, or OPENEAR_DATABASE_URL's) migrated, a
    pseudonym key (0600), the taxonomy, an admin."""
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
    mode: Annotated[str | None, typer.Option("--mode", help=MODE_HELP)] = None,
    home: HomeOption = None,
) -> None:
    """Import posts from a file through the guard into the store. Importing the same file twice changes nothing."""
    from openear.pipeline import import_file

    with _workspace(ctx, home) as ws:
        spec = _file_spec(ws.settings, source, visibility, fmt, kind, country, lang, ws)
        store = ws.store
        total = _count_lines(file) if file.is_file() else None
        with _progress() as bar:
            task = bar.add_task(f"import {file.name}", total=total)
            _, stats = import_file(ws.settings, store, file, fmt, spec, progress=lambda n: bar.advance(task, n),
                                   mode=_mode(mode))
        days = _retention_days(ws.settings, store) if stats.expired else None
    _print_errors(stats)
    if as_json:
        print(json.dumps({"source": source, **stats.as_dict()}))
    else:
        console.print(stats_table(f"Imported {file}", {source: stats}, days))
    if stats.invalid:
        raise typer.Exit(1)


def _stored_visibility(store: Store, source: str) -> str | None:
    """The visibility an earlier import recorded for a source that openear.toml does not declare."""
    from sqlalchemy import select

    from openear.store.schema import sources

    with store.connect() as conn:
        return conn.execute(select(sources.c.visibility).where(sources.c.name == source)).scalar_one_or_none()


def _file_spec(settings: settings_mod.Settings, source: str, visibility: str | None, fmt: str | None,
               kind: str | None, country: str | None, lang: str | None,
               ws: _Workspace | None = None):  # -> SourceSpec
    """The source a file's items go to, from the options and its declaration (shared by import and backfill).

    A source that openear.toml does not declare keeps the visibility its first import gave it: a later import
    may omit ``--visibility`` but not change it (that would silently relabel its stored posts)."""
    from openear.connectors import files
    from openear.errors import InvalidField
    from openear.normalise import country_field, lang_field
    from openear.settings import SourceSpec

    declared = settings.source(source)
    if declared is None and not settings_mod.source_name_ok(source):  # a declared name is the operator's choice
        _fail(f"--source: a name of 1 to 200 characters, without slashes, line breaks or surrounding spaces, "
              f"not {source!r}")
    try:
        country = country_field(country, "--country") if country is not None else None
        lang = lang_field(lang, "--lang") if lang is not None else None
    except InvalidField as exc:
        _fail(f"{exc.field}: {exc.problem} (e.g. {'US, GB, ES' if exc.field == '--country' else 'en, es'})")
    if fmt is not None and fmt not in files.FORMATS:
        _fail(f"--format: must be one of {', '.join(files.FORMATS)}, not {fmt!r}")
    if visibility is not None and visibility not in ("public", "consented"):
        _fail(f"--visibility: must be 'public' or 'consented', not {visibility!r} "
              "(openear never collects private or closed groups)")
    if kind is not None and kind not in ("social", "news"):
        _fail(f"--kind: must be 'social' or 'news', not {kind!r}")
    stored = _stored_visibility(ws.store, source) if declared is None and ws is not None else None
    if stored is not None and visibility is not None and visibility != stored:
        _fail(f"source {source!r} holds posts imported as {stored!r}, not {visibility!r}; import into a new source "
              f"name, or declare the source in {settings.config_path}")
    visibility = visibility or stored
    if declared is None and visibility is None:
        _fail(f"source {source!r} is not declared in {settings.config_path}; "
              "pass --visibility public or --visibility consented (later imports of it keep that)")
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
    return spec


EngineOption = Annotated[
    str, typer.Option("--engine", help="Where guard and enrichers run: local (this process) or ray (a Ray cluster).")
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="A running Ray cluster's address (default: start a private local one).",
                 show_default=False),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", help="Ray workers, one CPU each (default: the cluster's CPUs).", show_default=False,
                 min=1),
]


@app.command()
def backfill(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The (large) file to import.", show_default=False)],
    source: Annotated[str, typer.Option("--source", help="Source name the items belong to.")],
    engine: EngineOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
    visibility: Annotated[
        str | None, typer.Option("--visibility", help="public or consented (required unless declared in config).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl, csv, zeeschuimer or 4cat (default: from the file).")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="social or news (default: social).")] = None,
    country: Annotated[str | None, typer.Option("--country", help="Country hint, e.g. US, GB, ES.")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="Language hint, e.g. en, es.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help=MODE_HELP)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Items per batch (and per checkpoint).")] = 500,
    restart: Annotated[bool, typer.Option("--restart", help="Ignore the checkpoint: start at the first line.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Import a large file in batches, each committed with a checkpoint: a re-run resumes after the last one."""
    from openear.backfill import backfill as run_backfill
    from openear.distributed import BatchPipeline, make_engine
    from openear.pipeline import retention_of
    from openear.triage.feed import feeder

    if batch_size < 1:
        _fail("--batch-size: must be at least 1")
    _mode(mode)
    with _workspace(ctx, home) as ws:
        settings = ws.settings
        spec = _file_spec(settings, source, visibility, fmt, kind, country, lang, ws)
        if file.is_dir():
            _fail(f"{file}: is a directory, not a file")
        if not file.is_file():
            _fail(f"{file}: no such file")
        store = ws.store
        eng = make_engine(settings, engine, address=address, workers=workers, mode=mode, store=store)
        try:
            with _progress() as bar:
                task = bar.add_task(f"backfill {file.name}", total=_count_lines(file))
                retention = retention_of(settings, store)
                pipeline = BatchPipeline(store, eng, batch_size=batch_size, after_run=feeder(settings, store),
                                         retention=retention)
                result = run_backfill(store, file, fmt, spec, pipeline,
                                      restart=restart, progress=lambda n: bar.advance(task, n))
        except KeyboardInterrupt:
            from openear.backfill import checkpoint_key, done_line, file_head

            line = done_line(store, checkpoint_key(file, spec.name), file_head(file))
            _interrupted(f"lines 1 to {line} of {file} are committed (the checkpoint). Run the same command again "
                         f"to resume after line {line}." if line else
                         "no batch was committed yet. Run the same command again to start over.")
        finally:
            eng.close()
    stats = result.stats
    _print_errors(stats)
    if as_json:
        print(json.dumps({"source": source, "engine": engine, "skipped": result.skipped, **stats.as_dict()}))
    else:
        if result.skipped:
            console.print(f"Resumed after {result.skipped} item(s) that an earlier run already committed "
                          "(stored, withheld or rejected).", highlight=False)
        console.print(stats_table(f"Backfilled {file} ({engine})", {source: stats}, retention.days))
    if stats.invalid:
        raise typer.Exit(1)


def _instant(spec: str, field: str = "since") -> datetime:
    """A date (time) as given (UTC unless it says otherwise), or an amount back from now (``30d``); a
    ``ValueError`` names ``field``."""
    from datetime import UTC, datetime

    from openear.store.queries import Period

    try:
        value = datetime.fromisoformat(spec.strip().replace("Z", "+00:00"))
    except ValueError:
        return Period.parse_since(spec, field=field).since
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command()
def report(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="Start: 30d, 12h or a date (YYYY-MM-DD).")] = "30d",
    until: Annotated[str | None, typer.Option("--until", help="End date (exclusive), default now.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, markdown (md), csv or pdf.")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    scheduled: Annotated[
        str | None,
        typer.Option("--scheduled", help="daily or weekly: archive (and send) the due report of every team."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write a report for a period: volume, categories, sentiment, clusters, media and the guard's counts."""
    from openear import audit, reports
    from openear.store.queries import Period

    fmt = {"md": "markdown"}.get(fmt, fmt)
    if fmt not in ("html", "markdown", "csv", "pdf"):
        _fail(f"--format: must be html, markdown, csv or pdf, not {fmt!r}")
    if scheduled is not None:
        given = [f"--{opt}" for name, opt in (("since", "since"), ("until", "until"), ("fmt", "format"),
                                               ("output", "output")) if _given(ctx, name)]
        if given:
            _fail(f"--scheduled: cannot be combined with {', '.join(given)} (each team's due report is archived "
                  "under the workspace's reports/archive, for its own period and formats)")
        _scheduled_reports(ctx, home, scheduled)
        return
    if output is not None and output.is_dir():
        _fail(f"--output: {output} is a directory; name a file in it")
    with _workspace(ctx, home) as ws:
        try:
            period = Period.parse_since(since, field="--since")
            if until:  # a date in the future is fine: the period simply ends there
                period = Period(period.since, _instant(until, "--until"))
        except ValueError as exc:
            _fail(str(exc) if str(exc).startswith("--") else f"--since/--until: {exc}")
        with ws.store.connect() as conn:
            rep = reports.build_report(conn, period, settings_like=ws.settings)
        with ws.store.begin() as conn:
            audit.record(conn, "cli", "report", target=str(output or "stdout"), detail=f"{fmt} since {since}")
        if output is None and fmt == "pdf":
            sys.stdout.buffer.write(reports.render_pdf(rep))
        elif output is None:
            sys.stdout.write(reports.render(rep, fmt))
        else:
            try:
                reports.write_report(rep, fmt, output)
            except OSError as exc:
                _fail(f"--output: {output}: cannot write: {exc.strerror or exc}")
            console.print(f"Report written to [bold]{output}[/]")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option (its parameter name) was given on the command line, not left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _scheduled_reports(ctx: typer.Context, home: Path | None, kind: str) -> None:
    from openear import scheduler, triage

    if kind not in scheduler.KINDS:
        _fail(f"--scheduled: must be daily or weekly, not {kind!r}")
    with _workspace(ctx, home) as ws:
        done = scheduler.run_scheduled(ws.store, ws.settings, triage.load_triage(ws.settings), kind=kind)
    for item in done:
        console.print(f"{item.kind} report for [bold]{item.audience}[/]: {', '.join(map(str, item.paths.values()))}")
    if not done:
        console.print(f"No {kind} report was due (already archived).")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Processes to serve from.")] = 1,
    home: HomeOption = None,
) -> None:
    """Serve the dashboard (login required; /transparency is public)."""
    from openear.web.app import serve as run_server

    with _errors():
        settings = settings_mod.load(_home(ctx, home))
        _open_store(settings).close()
        console.print(f"Serving openear on [bold]http://{host}:{port}/[/]  (Ctrl+C to stop)")
        run_server(settings, host=host, port=port, workers=workers)


@app.command()
def demo(
    ctx: typer.Context,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after the report.")] = False,
    home: Annotated[
        Path | None, typer.Option("--home", help="Demo workspace, recreated (default: openear-demo).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """A fresh workspace, the bundled synthetic sample through the pipeline, a report, then the dashboard."""
    from openear.demo import run_demo, sample_path

    # `openear --home DIR demo` means DIR too ($OPENEAR_HOME does not: it names the user's real workspace)
    home = (home or (ctx.obj or {}).get("home") or Path("openear-demo")).resolve()
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
    """Delete posts older than the retention limit (retention_days in openear.toml, default 180) and what was
    derived from them: archived reports, closed cases, alerts no longer open, topics, deliveries."""
    from datetime import UTC, datetime

    from openear.pipeline import retention_of
    from openear.retention import describe, purge_expired

    with _workspace(ctx, home) as ws:
        retention = retention_of(ws.settings, ws.store)  # the admin Settings page's value wins, as at ingest
        before = datetime.now(UTC) - retention
        done = purge_expired(ws.store, ws.settings.home, before, dry_run=dry_run, actor="cli")
    verb = "Would delete" if dry_run else "Deleted"
    console.print(f"{verb} {done['posts']} posts created before {before:%Y-%m-%d} "
                  f"(retention {retention.days} days). {describe(done, dry_run=dry_run)}")


# a query may start with "-" (exclude a word): an unknown option-like word is the query, not an error
@app.command(context_settings={"ignore_unknown_options": True})
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help='Query, e.g. \'(tip OR tips) NEAR/3 missing lang:en -refund\'.')],
    limit: Annotated[int, typer.Option("--limit", help="Most posts to print.", min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of posts.")] = False,
    home: HomeOption = None,
) -> None:
    """Search stored posts with the query language (docs/query-language.md), newest first."""
    from rich.markup import escape

    from openear import audit
    from openear.query import parse
    from openear.query import search as run_search
    from openear.web.search import MAX_QUERY, find_posts, make_filter

    with _workspace(ctx, home) as ws:
        parsed = parse(query)
        with ws.store.connect() as conn:
            rows = run_search(conn, parsed, limit=limit)
            total: int | None = len(rows)
            if len(rows) == limit:  # maybe more: count them as the explorer does (which reads MAX_QUERY characters)
                total = find_posts(conn, query, make_filter(), limit=0)[1] if len(query.strip()) <= MAX_QUERY else None
        with ws.store.begin() as conn:
            audit.record(conn, "cli", "search", target=query, detail=f"{len(rows)} posts")
    if as_json:
        keys = ("source", "external_id", "kind", "created_at", "lang", "country", "category", "sentiment", "title",
                "text", "url")
        print(json.dumps([{k: (_iso(r[k]) if k == "created_at" else r[k]) for k in keys} for r in rows],
                         ensure_ascii=False))
        return
    if total is None:
        title = f"At least {len(rows)} posts match {escape(query)} (newest {len(rows)} shown)"
    else:
        title = f"{total} post{'' if total == 1 else 's'} match{'es' if total == 1 else ''} {escape(query)}"
        if total > len(rows):
            title += f" (newest {len(rows)} shown)"
    table = Table(title=title, title_justify="left")
    for col in ("created_at", "source", "category", "text"):
        table.add_column(col, overflow="fold")
    for r in rows:
        body = f"{r['title']}: {r['text']}" if r["title"] and r["kind"] == "news" else r["text"]
        table.add_row(f"{r['created_at']:%Y-%m-%d %H:%M}", Text(r["source"]), r["category"] or "",
                      Text(body if len(body) <= 200 else body[:199] + "…"))  # posts' text is not markup
    console.print(table)


@app.command()
def collect(
    ctx: typer.Context,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this source (repeatable; default: every live source).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass of each source, then exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    mode: Annotated[str | None, typer.Option("--mode", help=MODE_HELP)] = None,
    home: HomeOption = None,
) -> None:
    """Collect from live sources (reddit, mastodon, bluesky, x, rss) through the guard into the store."""
    _collect(ctx, home, source or [], once=once, as_json=as_json, mode=_mode(mode))


@app.command()
def run(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    engine: EngineOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
    mode: Annotated[str | None, typer.Option("--mode", help=MODE_HELP)] = None,
    home: HomeOption = None,
) -> None:
    """Run every live source on its interval, and the scheduled jobs (reports, escalations, spike alerts, purge),
    until SIGTERM or Ctrl+C (a failing source or job never blocks the others)."""
    _collect(ctx, home, [], once=False, as_json=as_json, engine=engine, address=address, workers=workers,
             mode=_mode(mode), schedule=True)


def _collect(ctx: typer.Context, home: Path | None, names: list[str], *, once: bool, as_json: bool,
             engine: str = "local", address: str | None = None, workers: int | None = None,
             mode: str | None = None, schedule: bool = False) -> None:
    import signal
    import threading

    from openear.collector import Collector, SourceResult, live_sources

    with _workspace(ctx, home) as ws:
        settings = ws.settings
        specs = live_sources(settings, names)
        if not specs and not schedule:
            _fail(f"no live sources declared in {settings.config_path} (add [[sources]] with a connector: "
                  "reddit, mastodon, bluesky, x or rss)")
        store = ws.store
        factory = eng = None
        if engine != "local" or address:  # guard and enrichers on Ray workers, shared by every source (issue 7)
            from openear.distributed import make_engine, pipeline_factory
            from openear.pipeline import retention_of
            from openear.triage.feed import feeder

            eng = make_engine(settings, engine, address=address, workers=workers, mode=mode, store=store)
            factory = pipeline_factory(store, eng, feeder(settings, store), retention_of(settings, store))
        if factory is None and mode is not None:  # the sentiment mode of each source's pipeline (issue 8)
            from openear.pipeline import Pipeline

            def factory(batch_size: int) -> Pipeline:
                return Pipeline.for_settings(settings, store, batch_size=batch_size, mode=mode)
        with _progress() as bar:
            tasks = {s.name: bar.add_task(f"collect {s.name}", total=None) for s in specs}

            def on_result(r: SourceResult) -> None:
                if r.error:
                    err.print(f"[yellow]{r.source}: {r.state}:[/] {r.error}", highlight=False, soft_wrap=True)

            collector = Collector(settings, store, specs, once=once, on_result=on_result,
                                  progress=lambda name, n: bar.advance(tasks[name], n), pipeline_factory=factory)
            stopping = {"n": 0}

            def on_signal(signum: int, _frame: object) -> None:
                stopping["n"] += 1
                collector.stop()
                if stopping["n"] > 1:  # a second signal: do not wait for a hanging source
                    raise KeyboardInterrupt

            previous = {}
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous[sig] = signal.signal(sig, on_signal)
            jobs = None
            if schedule:  # the scheduled jobs (issue 5) run beside the sources and stop with them
                from openear.scheduler import Scheduler

                jobs = threading.Thread(target=Scheduler(settings, store).serve, args=(collector.stop_event,),
                                        name="scheduler", daemon=True)
                jobs.start()
            try:
                totals = collector.run()
                while jobs is not None and jobs.is_alive():
                    jobs.join(0.5)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                if eng is not None:
                    eng.close()
        days = _retention_days(settings, store) if any(r.stats.expired for r in totals.values()) else None
    if as_json:
        print(json.dumps({name: {**r.stats.as_dict(), "deleted": r.deleted, "skipped": r.skipped,
                                 "state": r.state, "error": r.error} for name, r in totals.items()}))
    else:
        console.print(stats_table("Collected", {name: r.stats for name, r in totals.items()}, days))
        for name, r in totals.items():
            extra = [f"deleted at source {r.deleted}"] if r.deleted else []
            extra += [f"skipped {k} {v}" for k, v in sorted(r.skipped.items())]
            if r.state != "ok":
                extra.append(f"{r.state}: {r.error}")  # an error's text (a server's answer) is not markup
            if extra:
                console.print(f"{name}: " + "; ".join(extra), highlight=False, markup=False)
    if collector.fatal:  # e.g. the database's disk is full: every source stopped after its last whole batch
        _fail(collector.fatal, 1)
    if any(r.error for r in totals.values()):
        raise typer.Exit(1)


# -- users, API tokens, audit (issue 6) ---------------------------------------------------------------------
users_app = typer.Typer(help="Dashboard users and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (hashed at rest; each acts with its user's role).", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Username.", show_default=False)],
    role: Annotated[str, typer.Option("--role", help="viewer, analyst, owner or admin.")] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (one line).")
    ] = False,
    team: Annotated[
        list[str] | None,
        typer.Option("--team", help="An owner's team (repeat for more); from the triage config.", show_default=False),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Add a user. Without --password-stdin a password is generated and printed once."""
    from openear import audit
    from openear.web import auth, membership

    teams = [t for t in team or [] if t.strip()]
    if teams and role != "owner":
        _fail(f"--team: only owners belong to teams, not {role}s")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        generated = False
    else:
        password, generated = auth.generate_password(), True
    with _workspace(ctx, home) as ws:
        known = membership.known_teams(ws.settings) if teams else []
        store = ws.store
        try:
            with audit.transaction(store) as conn:
                auth.create_user(conn, name, password, role)
                audit.record(conn, "cli", "user.add", f"user:{name.strip()}", {"role": role})
                if teams:
                    _, after = membership.set_user_teams(conn, name, teams, known)
                    audit.record(conn, "cli", "user.teams", f"user:{name.strip()}", {"from": [], "to": after})
        except ValueError as exc:
            _fail(str(exc))
        except Exception as exc:  # the unique username
            if "UNIQUE" in str(exc).upper() or "duplicate" in str(exc).lower():
                _fail(f"user {name!r} exists")
            raise
    console.print(f"User [bold]{name.strip()}[/] added with role [bold]{role}[/].", highlight=False)
    if teams:
        console.print(f"Teams: {', '.join(sorted(set(teams)))}", highlight=False)
    elif role == "owner":
        console.print(
            f"{name.strip()} belongs to no team yet and sees no cases: openear users teams {name.strip()} --set TEAM",
            highlight=False,
        )
    if generated:
        console.print(f"One-time password (shown only now): [bold]{password}[/]", highlight=False)


@users_app.command("list")
def users_list(ctx: typer.Context, home: HomeOption = None) -> None:
    """List users, their roles and whether they are disabled."""
    from sqlalchemy import select

    from openear.store.schema import users
    from openear.web.membership import teams_by_user

    with _workspace(ctx, home) as ws, ws.store.connect() as conn:
        rows = conn.execute(
            select(users.c.id, users.c.username, users.c.role, users.c.disabled, users.c.created_at).order_by(
                users.c.username
            )
        ).all()
        teams = teams_by_user(conn)
    table = Table(title="Users", title_justify="left")
    for col in ("user", "role", "status", "created (UTC)", "teams"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(
            r.username, r.role, "disabled" if r.disabled else "active", f"{r.created_at:%Y-%m-%d %H:%M}",
            ", ".join(teams.get(r.id, [])) if r.role == "owner" else "",
        )
    console.print(table)


@users_app.command("teams")
def users_teams(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Username.", show_default=False)],
    set_: Annotated[
        str | None,
        typer.Option("--set", help="Comma-separated teams to belong to (replaces the old ones; '' for none).",
                     show_default=False),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Show an owner's teams, or set them with --set (teams from [\\[teams]] or the taxonomy's owners)."""
    from sqlalchemy import select

    from openear import audit
    from openear.store.schema import users
    from openear.web import membership

    with _workspace(ctx, home) as ws:
        store = ws.store
        try:
            if set_ is None:
                with store.connect() as conn:
                    uid = conn.execute(select(users.c.id).where(users.c.username == name.strip())).scalar()
                    now = sorted(membership.user_teams_of(conn, uid)) if uid is not None else None
                if now is None:
                    _fail(f"no user {name!r}")
                console.print(f"{name.strip()}: {', '.join(now or []) or '(no team)'}", highlight=False)
                return
            known = membership.known_teams(ws.settings)
            with audit.transaction(store) as conn:
                before, after = membership.set_user_teams(conn, name, membership.parse_teams(set_), known)
                if before != after:
                    audit.record(conn, "cli", "user.teams", f"user:{name.strip()}", {"from": before, "to": after})
        except ValueError as exc:
            _fail(str(exc))
    console.print(f"{name.strip()}: {', '.join(after) or '(no team)'}", highlight=False)


@users_app.command("disable")
def users_disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Username.", show_default=False)],
    enable: Annotated[bool, typer.Option("--enable", help="Enable the user again instead.")] = False,
    home: HomeOption = None,
) -> None:
    """Disable a user: their sessions end and their API tokens stop working at once."""
    from openear import audit
    from openear.web import auth

    with _workspace(ctx, home) as ws, audit.transaction(ws.store) as conn:
        found = auth.set_disabled(conn, name, not enable)
        if found:
            audit.record(conn, "cli", "user.enable" if enable else "user.disable", f"user:{name}")
    if not found:
        _fail(f"no user {name!r}")
    console.print(f"User [bold]{name}[/] {'enabled' if enable else 'disabled'}.", highlight=False)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="The user the token acts as.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "api",
    home: HomeOption = None,
) -> None:
    """Create an API token for a user and print it once (only its hash is kept)."""
    from openear import audit
    from openear.web import tokens

    with _workspace(ctx, home) as ws:
        store = ws.store
        try:
            with audit.transaction(store) as conn:
                token_id, token = tokens.create_token(conn, user, name)
                audit.record(conn, "cli", "token.create", f"token:{token_id}", {"user": user, "name": name})
        except ValueError as exc:
            _fail(str(exc))
    err.print(f"Token {token_id} for {user} (shown only now; send it as 'Authorization: Bearer <token>'):",
              highlight=False, markup=False)
    print(token)


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List API tokens, newest first: id, user, name, prefix, role, created, last used, revoked (never a value)."""
    from openear.web import tokens

    with _workspace(ctx, home) as ws, ws.store.connect() as conn:
        rows = tokens.list_tokens(conn, user)
    if as_json:
        print(json.dumps([{k: _iso(v) for k, v in r.items()} for r in rows]))
        return
    table = Table(title="API tokens", title_justify="left")
    for col in ("id", "user", "name", "prefix", "role", "created (UTC)", "last used", "revoked"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(str(r["id"]), Text(r["username"]), Text(r["name"]), Text(r["prefix"]), r["role"],
                      f"{r['created_at']:%Y-%m-%d %H:%M}",
                      f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "never",
                      f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "")
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(help="The token's id ('openear tokens list').", show_default=False)],
    home: HomeOption = None,
) -> None:
    """Revoke an API token."""
    from openear import audit
    from openear.web import tokens

    with _workspace(ctx, home) as ws, audit.transaction(ws.store) as conn:
        done = tokens.revoke_token(conn, token_id)
        if done:
            audit.record(conn, "cli", "token.revoke", f"token:{token_id}")
    if not done:
        _fail(f"no live token {token_id}")
    console.print(f"Token {token_id} revoked.")


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    actor: Annotated[str, typer.Option("--actor", help="Only this actor (a username, 'cli', 'alert:N').")] = "",
    action: Annotated[str, typer.Option("--action", help="Only this action (e.g. post.view, export, search).")] = "",
    limit: Annotated[int, typer.Option("--limit", help="Most entries to print.", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    home: HomeOption = None,
) -> None:
    """The newest audit entries (who viewed, exported, changed what), optionally of one actor or action. Reading the
    log is itself recorded, as on the admin page."""
    from openear import audit

    with _workspace(ctx, home) as ws:
        with ws.store.connect() as conn:
            total, rows = audit.page(conn, actor=actor, action=action, limit=limit)
        audit.log(ws.store, "cli", "audit.view", "audit", {"actor": actor, "action": action, "limit": limit})
    if as_json:
        keys = ("id", "at", "actor", "action", "target", "detail")
        print(json.dumps([{k: (_iso(r[k]) if k == "at" else r[k]) for k in keys} for r in rows],
                         ensure_ascii=False))
        return
    shown = f" (newest {len(rows)} shown)" if total > len(rows) else ""
    table = Table(title=f"{total} audit entr{'y' if total == 1 else 'ies'}{shown}", title_justify="left")
    for col in ("id", "at (UTC)", "actor", "action", "target", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), f"{r['at']:%Y-%m-%d %H:%M:%S}", Text(r["actor"]), Text(r["action"]),
                      Text(r["target"] or ""), Text(r["detail"] or ""))
    console.print(table)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, home: HomeOption = None) -> None:
    """Check the audit log's hash chain; exit 1 if any entry was changed, removed or reordered."""
    from sqlalchemy import func, select

    from openear import audit
    from openear.store.schema import audit_log

    with _workspace(ctx, home) as ws, ws.store.connect() as conn:
        ok = audit.verify(conn)
        n = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    if not ok:
        err.print(f"[bold red]audit log: chain broken[/] ({n} entries): entries were changed, removed or reordered")
        raise typer.Exit(1)
    console.print(f"audit log: {n} entries, chain intact")


@app.command("backup")
def backup_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Backup file to write (must not exist).")],
    home: HomeOption = None,
) -> None:
    """Back up the database: SQLite's online backup API, or pg_dump for PostgreSQL (the pseudonym key is not in it)."""
    from openear import audit
    from openear.backup import backup

    with _workspace(ctx, home) as ws:
        store = ws.store  # a missing store is named as such, not created empty by backup's check
        done = backup(ws.settings.database_url, file)
        audit.log(store, "cli", "backup", target=str(done.path), detail=json.dumps({"posts": done.posts}))
    console.print(f"Backed up {done.posts} posts to {done.path} ({done.kind}, {done.bytes:,} bytes). "
                  "The pseudonym key is not in the backup: keep a copy of it elsewhere.")


key_app = typer.Typer(help="The pseudonym key: its fingerprint, and the store's.", no_args_is_help=True)
app.add_typer(key_app, name="key")


@key_app.command("show")
def key_show(ctx: typer.Context, home: HomeOption = None) -> None:
    """Print the fingerprints of this workspace's key and of the key the store's authors were pseudonymised with."""
    from openear.guard import key_fingerprint, load_key

    with _workspace(ctx, home) as ws:
        mine = key_fingerprint(load_key(ws.settings.key_path))
        stored = ws.store.key_fingerprint()
    console.print(f"this workspace's key: {mine}", highlight=False)
    console.print(f"the store's key:      {stored or '(none yet: the first import records it)'}"
                  + ("" if stored in (None, mine) else "  (different: imports are refused)"), highlight=False)


@key_app.command("accept")
def key_accept(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    home: HomeOption = None,
) -> None:
    """Make this workspace's key the store's (after a lost key): posts stored from now on get new pseudonyms, so an
    author's old and new posts no longer share one. Recorded in the audit log."""
    from openear import audit
    from openear.guard import key_fingerprint, load_key

    with _workspace(ctx, home) as ws:
        mine = key_fingerprint(load_key(ws.settings.key_path))
        stored = ws.store.key_fingerprint()
        if stored == mine:
            console.print(f"The store already uses this workspace's key ({mine}).", highlight=False)
            return
        if stored is not None and not yes:
            typer.confirm(f"Replace the store's key {stored} with {mine}? New posts get new pseudonyms", abort=True)
        ws.store.bind_key(mine, replace=True)
        audit.log(ws.store, "cli", "key.accept", target="pseudonym_key", detail={"from": stored, "to": mine})
    console.print(f"The store now takes posts pseudonymised with {mine}.", highlight=False)


@app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file written by 'openear backup'.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that already holds posts.")] = False,
    home: HomeOption = None,
) -> None:
    """Restore a backup into this workspace's database (a fresh instance, unless --force)."""
    from openear import audit
    from openear.backup import restore
    from openear.guard import key_fingerprint, load_key

    with _workspace(ctx, home) as ws:
        n = restore(ws.settings.database_url, file, force=force)
        audit.log(ws.store, "cli", "restore", target=str(file), detail=json.dumps({"posts": n, "force": force}))
        stored, mine = ws.store.key_fingerprint(), key_fingerprint(load_key(ws.settings.key_path))
    console.print(f"Restored {n} posts from {file}.")
    if stored not in (None, mine):
        _fail(f"the restored posts were pseudonymised with another key ({stored}; this workspace's is {mine}): "
              f"copy that workspace's key file to {ws.settings.key_path} (mode 0600) before the next import, or "
              "run 'openear key accept' to give new posts new pseudonyms", 1)


@app.command("eval")
def eval_(
    file: Annotated[
        Path, typer.Argument(help="Labelled JSON Lines (text, lang, kind, categories, primary, sentiment).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mode: Annotated[
        str, typer.Option("--mode", help="Sentiment model: fast (default), accurate, or rules (bulk backfills).")
    ] = "fast",
) -> None:
    """Measure the shipped enrichers and the guard's protected-topic detector on a labelled file."""
    from openear.enrich.sentiment import load_sentiment
    from openear.evaluate import evaluate, format_table

    _mode(mode)
    with _errors():
        result = evaluate(file, mode=mode)
        model = load_sentiment(mode).enricher
    if as_json:
        print(json.dumps({**result, "mode": mode, "sentiment_model": model}))
    else:
        console.print(format_table(result))
        console.print(f"sentiment: {model} (mode {mode})")


# -- analyst-trained categories, re-enrichment, emerging topics (issue 8) ------------------------------------------
@app.command("train")
def train_(
    ctx: typer.Context,
    from_file: Annotated[
        Path | None, typer.Option("--from", help="Labelled JSON Lines (openear eval format) instead of the store's "
                                                 "analyst overrides.", show_default=False)
    ] = None,
    features: Annotated[
        str, typer.Option("--features", help="embeddings (sentence encoder), tfidf (n-grams; usable in --mode "
                                             "rules) or both.")
    ] = "embeddings",
    yes: Annotated[bool, typer.Option("--yes", help="Activate the new model without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Measure only: save and activate nothing.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the saved models and exit.")] = False,
    activate_: Annotated[
        str | None, typer.Option("--activate", help="Make this saved version active (rollback), e.g. 2 or v2.",
                                 show_default=False)
    ] = None,
    deactivate: Annotated[bool, typer.Option("--deactivate", help="No trained model: the rules alone.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with --list, or the measured figures).")] = False,
    home: HomeOption = None,
) -> None:
    """Fit a category model from >= 10 labelled examples per class; show cross-validated figures; activate on yes."""
    from openear import train as tr

    if activate_ is not None and deactivate:
        _fail("--activate and --deactivate: choose one")
    say = err if as_json else console  # with --json, stdout holds the JSON alone
    with _workspace(ctx, home) as ws:
        settings, store = ws.settings, ws.store
        if list_:
            with store.connect() as conn:
                rows = tr.list_models(conn)
            _print_models(rows, as_json)
            return
        if activate_ is not None or deactivate:
            version = None if deactivate else tr.parse_version(activate_ or "")
            tr.activate(store, version, "cli")
            console.print(f"Model v{version} is active; run 'openear reenrich --since ...' to relabel stored posts."
                          if version is not None else "No trained model is active: the taxonomy rules alone.")
            return
        from openear.enrich.classify import Classifier

        classifier = Classifier.load(settings.taxonomy_path if settings.taxonomy_path.exists() else None)
        known = set(classifier.topical)
        if from_file is not None:
            examples, source = tr.examples_from_file(from_file, known), str(from_file)
        else:
            with store.connect() as conn:
                examples, source = tr.examples_from_store(conn, known), "store"
        with store.connect() as conn:
            version = tr.next_version(conn)
        try:
            result = tr.train(examples, version=version, features=features, data_source=source,
                              classifier=classifier)
        except tr.TooFewExamples as exc:
            _fail(f"train: {exc}")
        if as_json:
            print(json.dumps(tr.describe(result)), flush=True)  # before the messages on stderr
        else:
            console.print(tr.metrics_table(result))
            console.print(tr.confusion_table(result))
            console.print(f"{result.examples} examples, {len(result.classes)} classes, features "
                          f"{result.model.features}, {result.seconds:.1f} s.", highlight=False)
        if dry_run:
            say.print("Dry run: nothing saved.")
            return
        version = tr.save(store, settings.home, result, "cli")
        try:
            confirmed = yes or typer.confirm(f"Activate model v{version}?", default=False, err=True)
        except typer.Abort:
            confirmed = False
        if confirmed:
            tr.activate(store, version, "cli")
            say.print(f"Model v{version} saved and active (labels by trained@v{version}); run "
                      "'openear reenrich --since ...' to relabel stored posts.")
        else:
            say.print(f"Model v{version} saved, not active ('openear train --activate {version}' later).")


def _print_models(rows: list[dict], as_json: bool) -> None:
    from openear.train import when

    if as_json:
        print(json.dumps(_jsonable(rows)))
        return
    table = Table(title="Category models", title_justify="left")
    for col in ("version", "active", "created (UTC)", "examples", "classes", "CV macro F1", "data"):
        table.add_column(col, no_wrap=col != "classes")
    for r in rows:
        table.add_row(f"v{r['version']}", "yes" if r["active"] else "", when(r["created_at"]), str(r["n_examples"]),
                      ", ".join(r["classes"]), f"{r['macro_f1']:.3f}", f"{r['data_source']} {r['data_hash'][:12]}")
    console.print(table)
    if not rows:
        console.print("No model yet: 'openear train' fits one from the analysts' label overrides.")


@app.command()
def reenrich(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="Posts created from: 30d, 12h or a date (YYYY-MM-DD).")],
    until: Annotated[str | None, typer.Option("--until", help="Up to this date (exclusive); default now.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help=MODE_HELP)] = None,
    only: Annotated[str, typer.Option("--only", help="language, categories, sentiment or all.")] = "all",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Posts per committed batch.", min=1)] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Relabel stored posts with the current enrichers (analyst overrides untouched); resumes after Ctrl+C."""

    from openear import audit
    from openear.reenrich import ONLY
    from openear.reenrich import reenrich as run_reenrich

    if only not in ONLY:
        _fail(f"--only: must be one of {', '.join(ONLY)}, not {only!r}")
    if mode is not None:
        _mode(mode)
    try:
        start = _instant(since, "--since")
        end = _instant(until, "--until") if until else None
        if end is not None and end <= start:
            raise ValueError("--since/--until: --until must be after --since")
    except ValueError as exc:
        _fail(str(exc))
    with _workspace(ctx, home) as ws:
        settings, store = ws.settings, ws.store
        try:
            with _progress() as bar:
                task = bar.add_task("reenrich", total=None)
                result = run_reenrich(store, settings, since=start, until=end, since_spec=since,
                                      until_spec=until, mode=mode or settings.sentiment_mode, only=only,
                                      batch_size=batch_size,
                                      on_total=lambda n: bar.update(task, total=n),
                                      progress=lambda n: bar.advance(task, n))
        except KeyboardInterrupt:
            _interrupted("the posts of every committed batch keep their new labels. Run the same command again to "
                         "resume after the last one.")
        audit.log(store, "cli", "reenrich", target=f"since {since}", detail=result.as_dict())
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    if result.resumed_after is not None:
        console.print(f"Resumed an interrupted run after post {result.resumed_after}.", highlight=False)
    console.print(f"Re-enriched {result.scanned} posts with {', '.join(result.enrichers)}", highlight=False)
    table = Table(title="Labels replaced", title_justify="left")
    table.add_column("label")
    table.add_column("posts changed", justify="right")
    for name, n in result.changed.items():
        table.add_row(name, str(n))
    console.print(table)
    console.print(f"{result.posts_changed} posts changed; analyst overrides untouched.", highlight=False)


@app.command("topics")
def topics_(
    ctx: typer.Context,
    day: Annotated[str | None, typer.Option("--day", help="The window's last day (YYYY-MM-DD); default today UTC.",
                                            show_default=False)] = None,
    window: Annotated[int, typer.Option("--window", help="Days per window (compared with the window before).",
                                        min=1)] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Find (and store) the day's emerging topics among posts no category explains; print them."""
    from openear import audit
    from openear.topics import emerging_topics, parse_day, topics_for_day

    with _workspace(ctx, home) as ws:
        store = ws.store
        try:
            found = emerging_topics(store, day, window_days=window)
        except ValueError as exc:
            _fail(f"--{exc}" if str(exc).startswith("day:") else str(exc))
        shown = topics_for_day(store, parse_day(day))
        audit.log(store, "cli", "topics.view", target=parse_day(day).isoformat(), detail=f"{len(found)} topics")
    if as_json:
        print(json.dumps(shown, ensure_ascii=False))
        return
    if not shown:
        console.print(f"No emerging topic in the {window} days to {parse_day(day)}.")
        return
    table = Table(title=f"Emerging topics, {window} days to {parse_day(day)}", title_justify="left")
    for col in ("#", "terms", "posts", "before", "representative posts"):
        table.add_column(col, overflow="fold")
    for t in shown:
        samples = "\n".join(f"[{p['id']}] {p['text'][:120]}" for p in t["posts"])
        table.add_row(str(t["rank"]), Text(", ".join(t["terms"])), str(t["n_posts"]), str(t["n_previous"]),
                      Text(samples))  # posts' text is not markup
    console.print(table, highlight=False)

# -- cases and alerts (issue 5) ---------------------------------------------------------------------------------
cases_app = typer.Typer(
    help="Cases: flag posts and clusters, follow them to resolution, escalate.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Spike alerts per category, source and language.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")
app.add_typer(alerts_app, name="alerts")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ActorOption = Annotated[str, typer.Option("--as", help="Who is acting (recorded in the history).")]


@contextmanager
def _triage_store(ctx: typer.Context, home: Path | None = None) -> Iterator[tuple[object, object, object]]:
    from openear import triage

    with _workspace(ctx, home) as ws:
        cfg = triage.load_triage(ws.settings)
        yield ws.settings, cfg, ws.store


def _jsonable(value: object) -> object:
    from datetime import datetime

    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@cases_app.command("list")
def cases_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="new, investigating, escalated, resolved, dismissed or open.")
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Only this team's cases.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List cases, newest first."""
    from openear import audit, triage

    if status is not None and status not in (*triage.STATUSES, "open"):
        _fail(f"--status: must be one of {', '.join(triage.STATUSES)} or open, not {status!r}")
    with _triage_store(ctx, home) as (_s, _c, store):
        with store.connect() as conn:  # type: ignore[attr-defined]
            wanted = triage.OPEN_STATUSES if status == "open" else status
            rows = triage.list_cases(conn, status=wanted, team=team)
        # titles are often a post's opening words: audited as the cases board is (guardrail 7)
        audit.log(store, "cli", "cases.list", "cases", {"status": status, "team": team, "results": len(rows)})
    if as_json:
        print(json.dumps(_jsonable(rows), ensure_ascii=False))
        return
    table = Table(title="Cases")
    for col in ("id", "status", "priority", "team", "posts", "title"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["status"], r["priority"], r["team"], str(r["posts"]), Text(r["title"][:70]))
    console.print(table)


@cases_app.command("show")
def cases_show(ctx: typer.Context, case_id: int, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """One case with its history, clusters and linked posts."""
    from openear import audit, triage

    with _triage_store(ctx, home) as (_s, _c, store):
        with store.connect() as conn:  # type: ignore[attr-defined]
            case = triage.get_case(conn, case_id)
        if case is None:
            _fail(f"case {case_id}: no such case")
        audit.log(store, "cli", "case.view", f"case:{case_id}")
    if as_json:
        print(json.dumps(_jsonable(case), ensure_ascii=False))
        return
    assert case is not None
    console.print(Text.assemble((f"#{case['id']} {case['title']}", "bold"),
                                f"  {case['status']} · {case['priority']} · {case['team']} · assignee "
                                f"{case['assignee'] or '-'} · {case['post_count']} posts"), highlight=False)
    for e in case["events"]:
        detail = json.dumps(e["detail"], ensure_ascii=False)
        console.print(f"  {e['at']:%Y-%m-%d %H:%M} {e['actor']}: {e['kind']} {detail}", highlight=False, markup=False)


@cases_app.command("open")
def cases_open(
    ctx: typer.Context,
    post: Annotated[int | None, typer.Option("--post", help="Flag this post.")] = None,
    cluster: Annotated[int | None, typer.Option("--cluster", help="Flag this near-duplicate cluster.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Default: the post's opening words.")] = None,
    priority: Annotated[str, typer.Option("--priority", help="low, normal, high or urgent.")] = "normal",
    team: Annotated[str | None, typer.Option("--team", help="Default: by the routing rules.")] = None,
    actor: ActorOption = "cli",
    home: HomeOption = None,
) -> None:
    """Open a case on a post or a near-duplicate cluster."""
    from openear import triage

    with _triage_store(ctx, home) as (_s, cfg, store), store.begin() as conn:  # type: ignore[attr-defined]
        teams = [t.name for t in cfg.teams]  # type: ignore[attr-defined]
        if team is not None and team not in teams:
            _fail(f"--team: {team!r} is not a team ({', '.join(teams)})")
        case_id = triage.open_case_for(
            conn, cfg, actor=actor, post_id=post, cluster_id=cluster, title=title,  # type: ignore[arg-type]
            priority=priority, team=team,
        )
    console.print(f"Opened case #{case_id}")


@cases_app.command("status")
def cases_status(
    ctx: typer.Context, case_id: int, status: str,
    note: Annotated[str | None, typer.Option("--note", help="Why.")] = None, actor: ActorOption = "cli",
    home: HomeOption = None,
) -> None:
    """Move a case: investigating, escalated, resolved, dismissed (or back to new / investigating)."""
    from openear import triage

    with _triage_store(ctx, home) as (_s, _c, store), store.begin() as conn:  # type: ignore[attr-defined]
        triage.transition(conn, case_id, status, actor=actor, note=note)
    console.print(f"Case #{case_id} is {status}")


@cases_app.command("assign")
def cases_assign(
    ctx: typer.Context, case_id: int, assignee: str, actor: ActorOption = "cli", home: HomeOption = None
) -> None:
    """Assign a case to a user who works its team: an analyst, an admin or an owner of that team ('-' to clear)."""
    from openear import triage

    with _triage_store(ctx, home) as (_s, _c, store), store.begin() as conn:  # type: ignore[attr-defined]
        triage.assign(conn, case_id, None if assignee == "-" else assignee, actor=actor)
    console.print(f"Case #{case_id} assigned to {assignee}")


@cases_app.command("note")
def cases_note(
    ctx: typer.Context, case_id: int, text: str, actor: ActorOption = "cli", home: HomeOption = None
) -> None:
    """Add a note to a case's history."""
    from openear import triage

    with _triage_store(ctx, home) as (_s, _c, store), store.begin() as conn:  # type: ignore[attr-defined]
        triage.add_note(conn, case_id, text, actor=actor)
    console.print(f"Note added to case #{case_id}")


@cases_app.command("sync")
def cases_sync(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """One triage pass: attach new cluster posts, apply case rules, detect spikes, escalate and notify."""
    from openear import triage

    with _triage_store(ctx, home) as (_s, cfg, store):
        result = triage.run(store, cfg)  # type: ignore[arg-type]
    summary = {
        "opened": result.opened, "attached": result.attached, "alerts": [a["id"] for a in result.alerts],
        "refreshed": [a["id"] for a in result.refreshed],
        "escalated": [e.case_id for e in result.escalations],
        "deliveries": [{"channel": d.channel, "team": d.team, "status": d.status} for d in result.deliveries],
    }
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"Opened {len(result.opened)} cases, attached {result.attached} posts, "
                      f"{len(result.alerts)} new alerts ({len(result.refreshed)} recounted), "
                      f"escalated {len(result.escalations)} cases.")


@alerts_app.command("list")
def alerts_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="open, acknowledged or closed.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List spike alerts, newest first."""
    from openear import alerts, audit

    if status is not None and status not in alerts.STATUSES:
        _fail(f"--status: must be one of {', '.join(alerts.STATUSES)}, not {status!r}")
    with _triage_store(ctx, home) as (_s, _c, store):
        with store.connect() as conn:  # type: ignore[attr-defined]
            rows = alerts.list_alerts(conn, status=status)
        audit.log(store, "cli", "alerts.view", "alerts", {"status": status, "results": len(rows)})  # terms, posts
    if as_json:
        print(json.dumps(_jsonable(rows), ensure_ascii=False))
        return
    table = Table(title="Spike alerts")
    for col in ("id", "status", "series", "bucket", "observed", "expected", "terms"):
        table.add_column(col)
    for a in rows:
        table.add_row(str(a["id"]), a["status"], f"{a['dimension']}={a['value']}",
                      f"{a['bucket_start']:%Y-%m-%d %H:%M} ({a['granularity']})", str(a["observed"]),
                      f"{a['expected']:.1f}", Text(", ".join(a["terms"][:5])))
    console.print(table)


@alerts_app.command("detect")
def alerts_detect(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Look for spikes now (without opening cases or notifying: 'openear cases sync' does both)."""
    from openear import alerts, audit

    with _triage_store(ctx, home) as (_s, cfg, store), audit.transaction(store) as conn:  # type: ignore[arg-type]
        found = alerts.detect(conn, cfg.alerts)  # type: ignore[attr-defined]
        audit.record(conn, "cli", "alerts.view", "alerts", {"detected": len(found)})  # --json: terms and posts
    if as_json:
        print(json.dumps(_jsonable(found), ensure_ascii=False))
    else:
        for a in found:
            console.print(alerts.describe(a), highlight=False)
        console.print(f"{len(found)} new alerts.")


@alerts_app.command("ack")
def alerts_ack(
    ctx: typer.Context, alert_id: int,
    close: Annotated[bool, typer.Option("--close", help="Close instead of acknowledging.")] = False,
    actor: ActorOption = "cli",
    home: HomeOption = None,
) -> None:
    """Acknowledge (or close) an alert."""
    from openear import alerts

    with _triage_store(ctx, home) as (_s, _c, store), store.begin() as conn:  # type: ignore[attr-defined]
        ok = alerts.acknowledge(conn, alert_id, actor=actor, status="closed" if close else "acknowledged")
    if not ok:
        _fail(f"alert {alert_id}: no such alert")
    console.print(f"Alert {alert_id} {'closed' if close else 'acknowledged'}")


# -- scheduled jobs (issue 5) -----------------------------------------------------------------------------------
schedule_app = typer.Typer(help="The scheduled jobs that 'openear run' runs: reports, escalations, alerts, purge.",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("list")
def schedule_list(ctx: typer.Context, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Every job: when it last ran and when it is next due."""
    from openear.scheduler import Scheduler

    with _triage_store(ctx, home) as (settings, _c, store):
        rows = Scheduler(settings, store).status()
    if as_json:
        print(json.dumps(_jsonable(rows), ensure_ascii=False))
        return
    table = Table(title="Scheduled jobs", title_justify="left")
    for col in ("job", "last run (UTC)", "next due (UTC)", "last result"):
        table.add_column(col, overflow="fold")
    for r in rows:
        last = f"{r['last_run_at']:%Y-%m-%d %H:%M}" if r["last_run_at"] else "never"
        result = f"failed: {r['last_error']}" if r["last_error"] else (r["last_result"] or "")
        table.add_row(r["name"], last, f"{r['next_due']:%Y-%m-%d %H:%M}", result)
    console.print(table)


@schedule_app.command("run")
def schedule_run(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run every job that is due now, then exit.")] = False,
    home: HomeOption = None,
) -> None:
    """Run the scheduled jobs when due, without the collectors (with --once: what is due now, then exit)."""
    import signal
    import threading

    from openear.scheduler import Scheduler

    with _triage_store(ctx, home) as (settings, _c, store):
        sched = Scheduler(settings, store)
        if not once:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            sched.serve(stop)
            return
        done = sched.run_due()
    for r in done:
        status = Text("ok") if r.ok else Text("failed", style="bold red")
        console.print(Text.assemble(f"{r.name}: ", status, f": {r.summary}"), highlight=False)
    if not done:
        console.print("No job was due.")
    if any(not r.ok for r in done):
        raise typer.Exit(1)


def _summaries(group: typer.Typer) -> None:
    """Each command's line in a ``--help`` listing: the first paragraph of its docstring as one line (rich help
    keeps a docstring's line breaks there, which cut a summary mid-sentence)."""
    import inspect

    for info in group.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _summaries(sub.typer_instance)


_summaries(app)

if __name__ == "__main__":  # pragma: no cover
    app()
