"""Reports: figures, HTML (sections, charts, escaping, self-contained), Markdown, CSV, files; all on real SQLite."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from openear import charts, reports
from openear.enrich import Enrichment, content_hash
from openear.errors import ConfigError
from openear.guard import Guard
from openear.models import EnrichedPost, GuardedPost, Label, Post, RunStats
from openear.reports import Report, build_report, render_csv, render_html, render_markdown, write_report
from openear.settings import DEFAULT_PURPOSE
from openear.store import Store
from openear.store.queries import Period

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PERIOD = Period.parse_since("30d", now=NOW)
XSS = "<script>alert(1)</script>"
DUP = "Support never answers the phone and the chat closes my ticket every time"


@dataclasses.dataclass
class Opts:
    organisation: str = "Acme Delivery <Drivers>"
    purpose: str = DEFAULT_PURPOSE
    retention_days: int = 90


def _enrich(batch: list[GuardedPost]) -> list[EnrichedPost]:
    """The real enrichers where they load (labels are replaced below, so model changes cannot move numbers)."""
    try:
        return Enrichment().enrich(batch)
    except (ConfigError, ValueError):  # sentiment model / deduper still being finished by other engineers
        return [EnrichedPost(p, (), "en", None, None, content_hash(p)) for p in batch]


def _seed(store: Store) -> None:
    guard = Guard(key=b"k" * 32)
    store.declare_source("forum", connector="files", visibility="consented", kind="social")
    store.declare_source("press", connector="rss", visibility="public", kind="news")
    rows = [
        # ext, source, kind, created, text, title, url, category, sentiment, lang, cluster
        ("a1", "forum", "social", datetime(2026, 11, 2, 9), DUP, None, None, "support", "negative", "en", "a1"),
        ("a2", "forum", "social", datetime(2026, 11, 3, 9), DUP, None, None, "support", "negative", "en", "a1"),
        (
            "a3",
            "forum",
            "social",
            datetime(2026, 11, 3, 12),
            f"{XSS} pay | was *late* [x](javascript:1)",
            None,
            None,
            "pay_tips",
            "negative",
            "en",
            "a3",
        ),
        (
            "a3b",
            "forum",
            "social",
            datetime(2026, 11, 3, 13),
            f"{XSS} pay | was *late* [x](javascript:1)",
            None,
            None,
            "pay_tips",
            "negative",
            "en",
            "a3",
        ),
        (
            "a4",
            "forum",
            "social",
            datetime(2026, 11, 4, 8),
            "Me encantan las propinas de esta semana, call me on +34 612 34 56 78",
            None,
            None,
            "pay_tips",
            "positive",
            "es",
            "a4",
        ),
        (
            "a5",
            "forum",
            "social",
            datetime(2026, 11, 4, 9),
            '=HYPERLINK("http://x") drivers, the app froze',
            None,
            None,
            "app_issue",
            "neutral",
            "en",
            "a5",
        ),
        (
            "w1",
            "forum",
            "social",
            datetime(2026, 11, 5, 9),
            "Union meeting for all drivers on Friday",
            None,
            None,
            "",
            "",
            "",
            "",
        ),
        (
            "w2",
            "forum",
            "social",
            datetime(2026, 11, 5, 10),
            "A journalist asked me to share my story",
            None,
            None,
            "",
            "",
            "",
            "",
        ),
        (
            "n1",
            "press",
            "news",
            datetime(2026, 11, 6, 7),
            "Couriers strike over pay.",
            f"Couriers strike {XSS}",
            "https://press.example/strike",
            "media_coverage",
            "neutral",
            "en",
            "n1",
        ),
        (
            "n2",
            "press",
            "news",
            datetime(2026, 11, 7, 7),
            "Another piece.",
            "=1+1 Bad link",
            "javascript:alert(1)",
            "media_coverage",
            "neutral",
            "en",
            "n2",
        ),
    ]
    for source in ("forum", "press"):
        run = store.start_run("import", source)
        guarded, rejections, meta = [], [], []
        for ext, src, kind, created, text, title, url, cat, sent, lang, cluster in rows:
            if src != source:
                continue
            post = Post(
                source=src,
                external_id=ext,
                platform="forum" if kind == "social" else "rss",
                kind=kind,
                visibility="public",
                created_at=created.replace(tzinfo=UTC),  # type: ignore[arg-type]
                text=text,
                title=title,
                url=url,
                author_id=f"id-{ext}",
            )
            v = guard.check(post, "public")
            if v.rejection:
                rejections.append(v.rejection)
            else:
                guarded.append(v.post)
                meta.append((cat, sent, lang, f"{src}\x1f{cluster}"))
        if source == "forum":
            closed = Post(
                source="forum",
                external_id="r1",
                platform="facebook",
                kind="social",
                visibility="closed",
                created_at=datetime(2026, 11, 5, tzinfo=UTC),
                text="from a group",
            )
            rejections.append(guard.check(closed, "public").rejection)  # type: ignore[arg-type]
        batch = [
            dataclasses.replace(
                e,
                category=c,
                sentiment=s,
                lang=lg,
                cluster_key=k,
                labels=(Label("primary", c, 0.9, "test@1"), Label("sentiment", s, 0.9, "test@1")),
            )
            for e, (c, s, lg, k) in zip(_enrich(guarded), meta, strict=True)
        ]
        store.write_batch(run, batch, rejections=rejections)
        store.finish_run(run, RunStats())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('reports') / 'openear.db'}")
    s.migrate()
    _seed(s)
    yield s
    s.close()


@pytest.fixture(scope="module")
def report(store: Store) -> Report:
    with store.connect() as conn:
        return build_report(conn, PERIOD, settings_like=Opts(), now=NOW)


@pytest.fixture(scope="module")
def html(report: Report) -> str:
    return render_html(report)


# -- figures ---------------------------------------------------------------------------------------------------
def test_report_figures(report: Report) -> None:
    assert report.totals == {
        "posts": 8,
        "news": 2,
        "social": 6,
        "clusters": 2,
        "sources": 2,
        "withheld": 2,
        "rejected": 1,
        "scrubbed": 2,
    }
    assert report.guard["withheld"] == {"collective_action": 1, "research_press_contact": 1}
    assert report.guard["rejected"] == {"closed": 1}
    assert report.guard["scrubbed"] == {"phone": 1, "url": 1}  # the javascript: link was dropped
    assert report.sentiment == {"negative": 4, "neutral": 3, "positive": 1}
    assert report.languages == {"en": 7, "es": 1}
    assert [(c["size"], c["category"]) for c in report.clusters] == [(2, "pay_tips"), (2, "support")]
    assert [m["title"] for m in report.media] == ["=1+1 Bad link", f"Couriers strike {XSS}"]
    assert report.generated_at == NOW and report.retention_days == 90
    assert report.days[0] == "2026-10-21" and report.days[-1] == "2026-11-20" and len(report.days) == 31


# -- HTML ------------------------------------------------------------------------------------------------------
class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Tags()
    p.feed(html)
    return p.tags


def test_html_has_every_section(html: str) -> None:
    ids = {a.get("id") for _, a in _tags(html)}
    assert {"purpose", "totals", "volume", "sentiment", "languages", "clusters", "media", "guard"} <= ids
    for heading in (
        "Totals",
        "Volume by category",
        "Sentiment",
        "Top repeated stories",
        "Media coverage",
        "What the guard kept out",
    ):
        assert heading in html
    assert "We listen to what delivery drivers say in public" in html  # the purpose statement
    assert "Posts are deleted 90 days after they were written." in html
    assert "Acme Delivery &lt;Drivers&gt;" in html  # settings are escaped too


def test_html_has_real_charts(html: str) -> None:
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.DOTALL)
    assert len(svgs) == 4  # volume, sentiment, languages, guard
    assert any("Pay and tips" in s and "Driver support" in s for s in svgs)  # the volume legend
    assert any("withheld: organising or collective action" in s for s in svgs)  # the guard chart
    assert any("English" in s for s in svgs)  # the language chart


def test_html_escapes_untrusted_text(html: str) -> None:
    tags = _tags(html)
    assert not any(t == "script" for t, _ in tags)
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not any((a.get("href") or "").lower().startswith("javascript") for _, a in tags)
    assert "Bad link" in html


def test_html_is_self_contained(html: str) -> None:
    tags = _tags(html)
    assert not any(t in ("script", "link", "img", "iframe", "object", "embed") for t, _ in tags)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", html)
    assert all(not (a.get("src") or "").startswith(("http", "//")) for _, a in tags)
    links = [a["href"] for t, a in tags if t == "a"]
    assert links == ["https://press.example/strike"]  # only the news item's own link, never a resource


def test_html_shows_the_guard_counts(html: str, report: Report) -> None:
    assert reports.guard_sentence(report) in html
    assert "withheld 2 posts, rejected 1 item and scrubbed 2 personal details" in html
    assert "Contact with researchers or journalists" in html and "Organising or collective action" in html
    assert "From a closed group" in html


def test_html_is_deterministic(report: Report, html: str) -> None:
    assert render_html(report) == html


def test_reports_never_show_author_pseudonyms(report: Report, html: str, store: Store) -> None:
    from sqlalchemy import select

    from openear.store.schema import posts

    with store.connect() as conn:
        pseudonyms = set(conn.execute(select(posts.c.author_pseudonym)).scalars())
    assert len(pseudonyms) == 8
    for text in (html, render_markdown(report), render_csv(report)):
        assert not any(p in text for p in pseudonyms)


def test_empty_period(store: Store) -> None:
    with store.connect() as conn:
        r = build_report(
            conn,
            Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 8, tzinfo=UTC)),
            settings_like=Opts(),
            now=NOW,
        )
    page = render_html(r)
    assert "<svg" not in page and "No posts in this period." in page
    assert "The guard had nothing to withhold" in page
    assert "No posts in this period." in render_markdown(r)


# -- Markdown and CSV --------------------------------------------------------------------------------------------
def test_markdown(report: Report) -> None:
    md = render_markdown(report)
    assert md.startswith("# Acme Delivery &lt;Drivers&gt;: what drivers said, 2026-10-21 to 2026-11-20")
    for heading in (
        "## Totals",
        "## Volume by category",
        "### Sentiment",
        "### Languages",
        "## Top near-duplicate clusters",
        "## Media coverage",
        "## The guard",
    ):
        assert heading in md
    assert "| 8 | 6 | 2 | 2 | 2 | 2 | 1 | 2 |" in md
    assert "| 2026-11-03 |" in md
    assert "Support never answers the phone" in md
    assert XSS not in md and "&lt;script&gt;" in md
    assert "| withheld | Organising or collective action | 1 |" in md
    assert "| scrubbed | Phone number | 1 |" in md
    assert "| English | 7 | 88% |" in md and "| forum | 6 | 75% |" in md
    assert "javascript" not in md.split("## Media coverage")[1].split("## The guard")[0].split("Bad link")[1][:20]
    pay = next(line for line in md.splitlines() if "&lt;script&gt;alert(1)&lt;/script&gt; pay" in line)
    assert pay.count(" | ") == 5 and "\\|" in pay and "\\*late\\*" in pay  # no table breakage or emphasis
    assert "\\[x\\](javascript:1)" in pay  # no link


def _media_section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def test_media_list_says_when_it_is_cut(store: Store, report: Report, html: str) -> None:
    with store.connect() as conn:
        cut = build_report(conn, PERIOD, settings_like=Opts(), media=1, now=NOW)
    assert [m["title"] for m in cut.media] == ["=1+1 Bad link"]  # the newest of the period's 2 news items
    md = _media_section(render_markdown(cut), "## Media coverage", "## The guard")
    assert "1 of 2 news items, newest first." in md and "Bad link" in md and "Couriers strike" not in md
    page = _media_section(render_html(cut), '<section id="media"', "</section>")
    assert '<p class="note">1 of 2 news items, newest first.</p>' in page and "Couriers strike" not in page
    # The complete list (both news items, the default limit) says nothing extra.
    for text in (
        _media_section(render_markdown(report), "## Media coverage", "## The guard"),
        _media_section(html, '<section id="media"', "</section>"),
    ):
        assert "Couriers strike" in text and "Bad link" in text
        assert "news items, newest first" not in text and " of 2 " not in text
    assert reports.media_note(cut) == "1 of 2 news items, newest first." and reports.media_note(report) is None


def test_only_web_links_are_links() -> None:
    assert reports._safe_url("https://a.example/x") == "https://a.example/x"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:x", "data:text/html,x", "//evil.example", "", None):
        assert reports._safe_url(bad) is None


def _csv(report: Report) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render_csv(report))))


def test_csv_is_tidy_and_complete(report: Report) -> None:
    rows = _csv(report)
    assert list(rows[0]) == ["section", "key", "day", "value", "detail"]
    by = {(r["section"], r["key"], r["day"]): r for r in rows}
    assert by[("totals", "posts", "")]["value"] == "8"
    assert by[("volume", "support", "2026-11-03")]["value"] == "1"
    assert by[("volume", "pay_tips", "2026-11-04")]["value"] == "1"
    assert by[("sentiment", "negative", "")]["value"] == "4"
    assert by[("language", "es", "")]["value"] == "1"
    assert by[("guard_withheld", "collective_action", "")]["value"] == "1"
    assert by[("guard_rejected", "closed", "")]["value"] == "1"
    assert by[("guard_scrubbed", "phone", "")]["value"] == "1"
    assert by[("guard_scrubbed", "url", "")]["value"] == "1"
    assert by[("guard_source", "forum:withheld", "")]["value"] == "2"
    assert by[("meta", "retention_days", "")]["value"] == "90"
    assert by[("cluster", str(report.clusters[0]["id"]), "2026-11-03")]["value"] == "2"
    assert sum(int(r["value"]) for r in rows if r["section"] == "volume") == 8


def test_csv_defuses_formulas(report: Report) -> None:
    text = render_csv(report)
    assert not any(cell.startswith("=") for row in csv.reader(io.StringIO(text)) for cell in row)
    assert "'=1+1 Bad link <>" in text


def test_write_report_each_format(report: Report, tmp_path: Path) -> None:
    for fmt, name in (("html", "r.html"), ("md", "r.md"), ("csv", "sub/r.csv")):
        out = write_report(report, fmt, tmp_path / name)
        assert out.read_text(encoding="utf-8") == reports.render(report, fmt)
    with pytest.raises(ValueError, match="format"):
        write_report(report, "docx", tmp_path / "r.docx")


# -- charts ----------------------------------------------------------------------------------------------------
def test_charts_are_deterministic_and_escape_labels() -> None:
    days = ["2026-11-01", "2026-11-02"]
    series = charts.volume_series([("2026-11-01", "a<b>&$x$", 2), ("2026-11-02", "app_issue", 1)], days)
    one, two = charts.volume_chart(days, series), charts.volume_chart(days, series)
    assert one == two and one is not None and one.startswith("<svg")
    assert "A&lt;b&gt;&amp;$x$" in one
    assert "<metadata" not in one and "<?xml" not in one
    assert charts.volume_chart(days, {}) is None
    assert charts.split_chart({}, title="x") is None
    assert charts.guard_chart({"withheld": {}, "rejected": {}, "scrubbed": {}}) is None
    single = charts.volume_chart(["2026-11-01"], {"app_issue": [3]})
    assert single is not None and "<svg" in single


def test_chart_ids_are_unique_per_chart() -> None:
    a = charts.split_chart({"x": 1}, title="Sentiment")
    b = charts.split_chart({"x": 1}, title="Languages")
    assert a is not None and b is not None
    ids_a = set(re.findall(r'\bid="([^"]+)"', a))
    ids_b = set(re.findall(r'\bid="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b


def test_volume_table_is_weekly_for_long_spans(report: Report) -> None:
    assert reports._volume_table(report)[0] == "Day"
    period = Period.parse_since("2026-10-01", now=NOW)
    long = dataclasses.replace(
        report,
        period=period,
        days=period.days,
        volume=[("2026-10-05", "support", 2), ("2026-10-25", "support", 1), ("2026-11-20", "pay_tips", 4)],
    )
    bucket, cats, rows = reports._volume_table(long)
    assert bucket == "Week of" and cats == ["pay_tips", "support"]
    assert rows == [("2026-10-05", [0, 2], 2), ("2026-10-19", [0, 1], 1), ("2026-11-16", [4, 0], 4)]  # Mondays
    assert "<th>Week of</th>" in render_html(long) and "| week of |" in render_markdown(long)


def test_a_pdf_fetches_nothing_from_the_network_or_the_disk(report: Report, html: str, tmp_path: Path) -> None:
    """Defence in depth behind the escaping: even a page that names outside resources (an image, a stylesheet, a
    font, on a local HTTP server and on disk) makes the PDF renderer fetch none of them."""
    import http.server
    import threading

    hits: list[str] = []

    class Count(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Count)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "secret.css"
    secret.write_text("body { background: red }", encoding="utf-8")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    bait = (f'<img src="{base}/img.png"><link rel="stylesheet" href="{base}/s.css">'
            f'<link rel="stylesheet" href="file://{secret}"><style>@import url("{base}/i.css");'
            f'@font-face {{ font-family: x; src: url("{base}/f.woff") }} body {{ font-family: x }}</style>')
    try:
        pdf = reports.render_pdf(report, html.replace("</head>", bait + "</head>", 1))
    finally:
        server.shutdown()
    assert pdf.startswith(b"%PDF") and hits == []
