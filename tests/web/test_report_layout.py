"""The HTML report on a phone, in headless Chromium (Debian's /usr/bin/chromium via Playwright): wide tables scroll
inside their own box and the page itself never scrolls sideways. Screenshots go to tmp_path and /tmp/openear-shots.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from live_server import chromium, shot

from openear import charts, scheduler
from openear.reports import Report
from openear.store.queries import Period

pytestmark = pytest.mark.browser

SINCE = datetime(2026, 10, 31, tzinfo=UTC)
PERIOD = Period(SINCE, SINCE + timedelta(days=30))
CATEGORIES = list(charts.CATEGORY_COLOURS)  # every category has posts: the volume table's widest case
EXCERPT = "Support never answers the phone and the chat closes my ticket every single time, so I gave up asking"
# A section that scheduled reports add (openear.scheduler), with a table as wide as the triage section's.
EXTRA_SECTION = (
    '<section id="triage" class="long"><h2>Cases</h2><table class="split"><thead><tr>'
    + "".join(f"<th>{h}</th>" for h in ("Case", "Title", "Team", "Priority", "Status", "Posts", "Opened"))
    + "</tr></thead><tbody><tr>"
    + "".join(
        f"<td>{c}</td>"
        for c in (
            "#12",
            "Deactivated-without-warning",
            "Driver support",
            "urgent",
            "escalated",
            "31",
            "2026-11-24 10:00 UTC",
        )
    )
    + "</tr></tbody></table></section>"
)


def _report() -> Report:
    days = PERIOD.days
    at = SINCE + timedelta(hours=9)
    return Report(
        period=PERIOD,
        generated_at=SINCE + timedelta(days=30),
        organisation="Acme Delivery",
        purpose="We listen to what delivery drivers say in public.",
        retention_days=90,
        totals={
            "posts": 30 * len(CATEGORIES) * 3,
            "social": 900,
            "news": 3,
            "clusters": 1,
            "sources": 3,
            "withheld": 4,
            "rejected": 2,
            "scrubbed": 7,
        },
        volume=[(d, c, 100 + i) for d in days for i, c in enumerate(CATEGORIES)],
        categories={c: 3000 + i for i, c in enumerate(CATEGORIES)},
        sentiment={"negative": 500, "neutral": 300, "positive": 100},
        languages={"en": 600, "es": 300},
        sources={"reddit-flexdrivers": 400, "foro-repartidores": 400, "news-en": 100},
        clusters=[
            {
                "id": 1,
                "size": 31,
                "first_seen": at,
                "last_seen": at + timedelta(days=12),
                "category": "scheduling_offers",
                "sentiment": "negative",
                "excerpt": EXCERPT,
            }
        ],
        media=[
            {
                "id": i,
                "title": f"Couriers strike over pay, part {i}",
                "url": f"https://press.example/{i}",
                "source": "news-en",
                "created_at": at + timedelta(days=i),
                "category": "media_coverage",
                "lang": "en",
                "excerpt": "Couriers strike.",
            }
            for i in range(3)
        ],
        guard={
            "withheld": {"collective_action": 4},
            "rejected": {"closed": 2},
            "scrubbed": {"phone": 7},
            "by_source": [{"source": "reddit-flexdrivers", "withheld": 4, "rejected": 2, "scrubbed": 7}],
        },
        days=days,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("width", [320, 390, 420])
def test_report_never_scrolls_sideways_on_a_phone(browser: Any, tmp_path: Path, width: int) -> None:
    report = _report()
    page_file = tmp_path / "report.html"
    page_file.write_text(scheduler.compose_html(report, EXTRA_SECTION, "Management"), encoding="utf-8")
    ctx = browser.new_context(viewport={"width": width, "height": 844}, device_scale_factor=1)
    page = ctx.new_page()
    page.goto(page_file.as_uri())
    viewport = page.evaluate("window.innerWidth")
    assert viewport == width
    # No table, nor anything else, makes the page itself wider than the screen...
    assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport
    # ... the volume table (one column per category), far wider than a phone, scrolls inside its own box ...
    box = page.locator("#volume .table-scroll")
    assert box.evaluate("e => e.scrollWidth") > width
    assert box.evaluate("e => e.getBoundingClientRect().right") <= width
    # ... and so does an added section's table (scheduled reports' triage section).
    assert page.locator("#triage table").evaluate("e => e.getBoundingClientRect().right") <= width
    shot(page, tmp_path, f"report-{width}px")
    ctx.close()


def _boxes(box: Any) -> Iterator[Any]:
    yield box
    for child in getattr(box, "children", None) or ():
        yield from _boxes(child)


def test_the_pdf_keeps_every_word_inside_the_a4_page() -> None:
    """In print (the PDF), the widest report (every category a column, an added section's table, the guard's
    tables side by side) keeps every word inside the page's margins: nothing is cut off at the right edge."""
    from openear import reports

    doc = reports.pdf_document(_report(), scheduler.compose_html(_report(), EXTRA_SECTION, "Management"))
    outside = []
    for n, page in enumerate(doc.pages, 1):
        box = page._page_box  # WeasyPrint's laid-out page (weasyprint is pinned)
        left, right = box.margin_left, box.margin_width() - box.margin_right
        for b in _boxes(box):
            if type(b).__name__ == "TextBox" and (b.position_x < left - 0.5 or b.position_x + b.width > right + 0.5):
                outside.append((n, b.text[:20], round(b.position_x + b.width - right)))
    assert len(doc.pages) >= 3 and not outside, outside
