"""Reports: the store's aggregates for a period, rendered as self-contained HTML (with charts), Markdown or CSV.

Reports aggregate (guardrail 5): no figure is grouped by author, and excerpts are the guard's scrubbed text. Every
report shows the guard's counts (guardrail 8), the purpose statement and the retention period. Post text is
untrusted: the HTML template autoescapes everything but the charts this module draws, Markdown escapes HTML and
table syntax, and CSV cells that a spreadsheet would run as a formula are defused.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Connection

from openear import charts
from openear.store import queries
from openear.store.queries import Period
from openear.topics import topics_for_report

__all__ = [
    "FORMATS",
    "Report",
    "ReportSettings",
    "build_report",
    "guard_sentence",
    "media_note",
    "render",
    "render_csv",
    "render_html",
    "render_markdown",
    "render_pdf",
    "write_report",
]

MEDIA_ITEMS = 50  # news items a report lists (the newest); media_note says when there were more

TEMPLATES = Path(__file__).parent / "data" / "templates"
FORMATS = ("html", "md", "csv")
CSV_COLUMNS = ("section", "key", "day", "value", "detail")
MAX_VOLUME_DAYS = 366
WEEKLY_AFTER_DAYS = 31  # a volume table spanning more days than this has one row per week (Monday)
LANGUAGE_COLOURS = {"en": "#4e79a7", "es": "#f28e2b", "other": "#bab0ac", "unknown": "#d9dde2"}


class ReportSettings(Protocol):
    """What a report needs from the settings (:class:`openear.settings.Settings` fits)."""

    @property
    def organisation(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def retention_days(self) -> int: ...


@dataclass(frozen=True)
class Report:
    """Every figure of one report, computed once and rendered in any format."""

    period: Period
    generated_at: datetime
    organisation: str
    purpose: str
    retention_days: int
    totals: dict[str, int]
    volume: list[tuple[str, str, int]]  # (day, category, n)
    categories: dict[str, int]
    sentiment: dict[str, int]
    languages: dict[str, int]
    sources: dict[str, int]
    clusters: list[dict[str, Any]]
    media: list[dict[str, Any]]
    guard: dict[str, Any]
    days: list[str] = field(default_factory=list)  # the days the volume chart and table cover
    topics: list[dict[str, Any]] = field(default_factory=list)  # emerging topics (openear.topics), latest day

    @property
    def retention(self) -> str:
        return f"Posts are deleted {self.retention_days} days after they were written."

    @property
    def title(self) -> str:
        return f"{self.organisation}: what drivers said, {_day(self.period.since)} to {_last_day(self.period)}"


def build_report(
    conn: Connection,
    period: Period,
    *,
    settings_like: ReportSettings,
    clusters: int = 10,
    media: int = MEDIA_ITEMS,
    now: datetime | None = None,
) -> Report:
    """Run the report's queries for ``period``."""
    volume = queries.volume_by_category(conn, period)
    days = period.days
    if len(days) > MAX_VOLUME_DAYS:  # a long period: chart the days that have posts, first to last
        seen = sorted({d for d, _, _ in volume})
        days = [d for d in days if seen and seen[0] <= d <= seen[-1]]
    return Report(
        period=period,
        generated_at=(now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0),
        organisation=settings_like.organisation,
        purpose=settings_like.purpose,
        retention_days=settings_like.retention_days,
        totals=queries.totals(conn, period),
        volume=volume,
        categories=queries.category_split(conn, period),
        sentiment=queries.sentiment_split(conn, period),
        languages=queries.language_split(conn, period),
        sources=queries.source_split(conn, period),
        clusters=queries.top_clusters(conn, period, limit=clusters),
        media=queries.media_coverage(conn, period, limit=media),
        guard=queries.guard_summary(conn, period),
        days=days,
        topics=topics_for_report(conn, period),
    )


# -- shared wording -------------------------------------------------------------------------------------------
def _day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


def _last_day(period: Period) -> str:
    return period.last_day.isoformat()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def guard_sentence(report: Report) -> str:
    """One paragraph explaining the guard's counts in plain words."""
    t = report.totals
    return (
        "To protect drivers, posts by individuals about organising or collective action, or about contact with "
        "researchers and journalists, are never stored: the guard only counts them per source and day. Items from "
        "private or closed groups are refused. Personal details (e-mail addresses, phone numbers, user names and "
        f"profile links) are replaced with placeholders before storage. In this period the guard withheld "
        f"{_plural(t['withheld'], 'post')}, rejected {_plural(t['rejected'], 'item')} and scrubbed "
        f"{_plural(t['scrubbed'], 'personal detail')}."
    )


def media_note(report: Report) -> str | None:
    """``"50 of 103 news items, newest first."`` when the media list stops short of the period's news items
    (``totals["news"]``: the same posts, ``kind`` news in the period); ``None`` when it lists them all."""
    shown, total = len(report.media), report.totals.get("news", 0)
    return f"{shown} of {total} news items, newest first." if shown < total else None


def _volume_table(report: Report) -> tuple[str, list[str], list[tuple[str, list[int], int]]]:
    """The volume as a table: its first column's heading (``Day``, or ``Week of`` when the posts span more than
    31 days), the categories (largest first) and one row per bucket with posts: (bucket, counts, total)."""
    series = charts.volume_series(report.volume, report.days)
    cats = list(series)
    buckets: dict[str, list[int]] = {}
    with_posts = [i for i, _ in enumerate(report.days) if any(series[c][i] for c in cats)]
    weekly = bool(with_posts) and with_posts[-1] - with_posts[0] >= WEEKLY_AFTER_DAYS
    for i, day in enumerate(report.days):
        counts = [series[c][i] for c in cats]
        if not any(counts):
            continue
        d = date.fromisoformat(day)
        key = (d - timedelta(days=d.weekday())).isoformat() if weekly else day
        row = buckets.setdefault(key, [0] * len(cats))
        for j, n in enumerate(counts):
            row[j] += n
    rows = [(key, counts, sum(counts)) for key, counts in buckets.items()]
    return ("Week of" if weekly else "Day"), cats, rows


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links are rendered as links (a stored URL is untrusted)."""
    return url if url and url.lower().startswith(("http://", "https://")) else None


# -- HTML ------------------------------------------------------------------------------------------------------
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["nice"] = charts.nice
    env.filters["when"] = _when
    env.filters["longdate"] = lambda d: f"{d.day} {d:%b %Y}"
    env.filters["safe_url"] = _safe_url
    env.filters["pct"] = lambda n, total: f"{n / total:.0%}" if total else "–"
    env.filters["colour"] = charts.category_colour
    env.filters["reason"] = charts.reason_label
    env.globals.update(nice=charts.nice, language_name=charts.language_name, as_is=str)
    return env


def render_html(report: Report) -> str:
    """A self-contained HTML page: inline CSS and SVG charts, no scripts, no external resources."""
    bucket, cats, rows = _volume_table(report)
    chart_svgs = {
        "volume": charts.volume_chart(report.days, charts.volume_series(report.volume, report.days)),
        "sentiment": charts.split_chart(report.sentiment, title="Sentiment", colours=charts.SENTIMENT_COLOURS),
        "languages": charts.split_chart(
            report.languages, title="Languages", colours=LANGUAGE_COLOURS, label=charts.language_name
        ),
        "guard": charts.guard_chart(report.guard),
    }
    return (
        _environment()
        .get_template("report.html")
        .render(
            r=report,
            charts={k: Markup(v) if v else None for k, v in chart_svgs.items()},  # drawn here; labels XML-escaped
            volume_bucket=bucket,
            volume_categories=cats,
            volume_rows=rows,
            guard_text=guard_sentence(report),
            media_note=media_note(report),
            sentiment_colours=charts.SENTIMENT_COLOURS,
            language_colours=LANGUAGE_COLOURS,
            category_colours={c: charts.category_colour(c, list(report.categories)) for c in report.categories},
        )
    )


# -- Markdown --------------------------------------------------------------------------------------------------
def _md(value: Any) -> str:
    """Text safe in a Markdown table cell: no HTML, no pipes, no line breaks, no emphasis or link syntax."""
    text = " ".join(str(value if value is not None else "").split()).replace("\\", "\\\\")
    for ch in "`*_[]|":
        text = text.replace(ch, "\\" + ch)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out


def _md_split(title: str, counts: dict[str, int], total: int, label: Any = charts.nice) -> list[str]:
    if not counts:
        return [f"### {title}", "", "No posts in this period.", ""]
    rows = [[label(k), v, f"{v / total:.0%}" if total else "–"] for k, v in counts.items()]
    return [f"### {title}", "", *_md_table(["", "posts", "share"], rows), ""]


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown (tables, no charts)."""
    t = report.totals
    lines = [
        f"# {_md(report.title)}",
        "",
        f"Period: {_when(report.period.since)} to {_when(report.period.until)} (end excluded). "
        f"Generated {_when(report.generated_at)}.",
        "",
        f"> {_md(report.purpose)}",
        "",
        f"Retention: {report.retention}",
        "",
        "## Totals",
        "",
        *_md_table(
            ["posts", "social", "news", "near-duplicate clusters", "sources", "withheld", "rejected", "scrubbed"],
            [
                [
                    t["posts"],
                    t["social"],
                    t["news"],
                    t["clusters"],
                    t["sources"],
                    t["withheld"],
                    t["rejected"],
                    t["scrubbed"],
                ]
            ],
        ),
        "",
        "## Volume by category",
        "",
    ]
    bucket, cats, rows = _volume_table(report)
    if rows:
        lines += _md_table([bucket.lower(), *(charts.nice(c) for c in cats), "total"], [[d, *c, n] for d, c, n in rows])
    else:
        lines.append("No posts in this period.")
    lines += ["", "## Splits", ""]
    total = t["posts"]
    lines += _md_split("Categories", report.categories, total)
    lines += _md_split("Sentiment", report.sentiment, total)
    lines += _md_split("Languages", report.languages, total, charts.language_name)
    lines += _md_split("Sources", report.sources, total, str)
    lines += ["## Top near-duplicate clusters", ""]
    if report.clusters:
        lines += _md_table(
            ["posts", "first seen", "last seen", "category", "sentiment", "excerpt"],
            [
                [
                    c["size"],
                    _when(c["first_seen"]),
                    _when(c["last_seen"]),
                    charts.nice(c["category"]),
                    c["sentiment"],
                    c["excerpt"],
                ]
                for c in report.clusters
            ],
        )
    else:
        lines.append("No post was repeated in this period.")
    lines += ["", "## Emerging topics", ""]
    if report.topics:
        lines += _md_table(
            ["terms", "posts", "before", "representative posts"],
            [
                [", ".join(t["terms"]), t["n_posts"], t["n_previous"], " / ".join(p["text"] for p in t["posts"])]
                for t in report.topics
            ],
        )
    else:
        lines.append("No new theme was found in this period.")
    lines += ["", "## Media coverage", ""]
    if note := media_note(report):
        lines += [note, ""]
    if report.media:
        lines += _md_table(
            ["published", "source", "title", "link"],
            [[_when(m["created_at"]), m["source"], m["title"], _safe_url(m["url"]) or ""] for m in report.media],
        )
    elif not note:
        lines.append("No news items in this period.")
    lines += ["", "## The guard", "", guard_sentence(report), ""]
    g = report.guard
    guard_rows = [
        [action, charts.reason_label(reason), n]
        for action in ("withheld", "rejected", "scrubbed")
        for reason, n in g[action].items()
    ]
    if guard_rows:
        lines += _md_table(["action", "reason", "count"], guard_rows)
    else:
        lines.append("The guard had nothing to withhold, reject or scrub in this period.")
    lines.append("")
    return "\n".join(lines)


# -- CSV -------------------------------------------------------------------------------------------------------
def _cell(value: Any) -> Any:
    """Defuse spreadsheet formulas in text cells (``=``, ``+``, ``-``, ``@`` at the start)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render_csv(report: Report) -> str:
    """A tidy CSV with the columns ``section, key, day, value, detail``.

    Sections: ``meta`` (key = field, detail = text), ``totals`` (key = figure), ``volume`` (key = category,
    day, value = posts), ``category``, ``sentiment``, ``language``, ``source`` (key, value = posts),
    ``cluster`` (key = cluster id, day = last seen, value = posts, detail = excerpt), ``media`` (key = source,
    day = published, detail = title and URL), ``guard_withheld``, ``guard_rejected``, ``guard_scrubbed``
    (key = reason, value = count) and ``guard_source`` (key = source:action, value = count).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)

    def row(section: str, key: Any, day: str = "", value: Any = "", detail: Any = "") -> None:
        w.writerow([section, _cell(key), day, value, _cell(detail)])

    p = report.period
    row("meta", "organisation", detail=report.organisation)
    row("meta", "period_since", _day(p.since), detail=p.since.isoformat())
    row("meta", "period_until", _day(p.until), detail=p.until.isoformat())
    row("meta", "generated_at", _day(report.generated_at), detail=report.generated_at.isoformat())
    row("meta", "retention_days", value=report.retention_days)
    row("meta", "purpose", detail=report.purpose)
    for k, v in report.totals.items():
        row("totals", k, value=v)
    for day, cat, n in report.volume:
        row("volume", cat, day, n)
    for section, counts in (
        ("category", report.categories),
        ("sentiment", report.sentiment),
        ("language", report.languages),
        ("source", report.sources),
    ):
        for k, v in counts.items():
            row(section, k, value=v)
    for c in report.clusters:
        row("cluster", c["id"], _day(c["last_seen"]), c["size"], c["excerpt"])
    for m in report.media:
        row("media", m["source"], _day(m["created_at"]), 1, f"{m['title']} <{m['url'] or ''}>")
    for action in ("withheld", "rejected", "scrubbed"):
        for reason, n in report.guard[action].items():
            row(f"guard_{action}", reason, value=n)
    for s in report.guard["by_source"]:
        for action in ("withheld", "rejected", "scrubbed"):
            if s[action]:
                row("guard_source", f"{s['source']}:{action}", value=s[action])
    return buf.getvalue()


# -- output ----------------------------------------------------------------------------------------------------
_RENDERERS = {"html": render_html, "md": render_markdown, "markdown": render_markdown, "csv": render_csv}


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt``: ``html``, ``md`` (or ``markdown``) or ``csv``."""
    try:
        renderer = _RENDERERS[fmt.lower()]
    except KeyError:
        raise ValueError(f"report format: {fmt!r}: expected one of {', '.join(FORMATS)}") from None
    return renderer(report)


def render_pdf(report: Report, html: str | None = None) -> bytes:
    """The HTML report (or ``html``, a page built on it) printed to A4 PDF by WeasyPrint, with its print styles."""
    return bytes(pdf_document(report, html).write_pdf())


def pdf_document(report: Report, html: str | None = None) -> Any:
    """The laid-out pages of :func:`render_pdf` (a WeasyPrint ``Document``)."""
    try:
        from weasyprint import HTML
        from weasyprint.urls import URLFetcher
    except ImportError:  # pragma: no cover - weasyprint is a dependency
        from openear.errors import ConfigError

        raise ConfigError("PDF reports need WeasyPrint: pip install weasyprint==70.0") from None
    # Everything a report shows is inline (its charts are SVG in the page): it fetches nothing, from the network
    # or the disk, whatever a stored post or URL might try to make it load.
    offline = URLFetcher(allowed_protocols=("data",), allow_redirects=False)
    page = html if html is not None else render_html(report)
    return HTML(string=page, base_url=None, url_fetcher=offline).render()


def write_report(report: Report, fmt: str, output: Path) -> Path:
    """Render and write the report (UTF-8, or PDF bytes for ``pdf``); creates the folder. Returns ``output``."""
    if fmt.lower() == "pdf":
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(render_pdf(report))
        return output
    text = render(report, fmt)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8", newline="")
    return output
