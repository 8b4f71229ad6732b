"""The dashboard's save-search form refuses an ``until`` before ``since`` as the API does, in the same words."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from casework import bearer
from sqlalchemy import func, select

from openear.store.schema import audit_log, saved_searches
from openear.web.saved import UNTIL_BEFORE_SINCE

BACKWARDS = {"since": "2026-11-20", "until": "2026-11-10"}


def _counts(web: Any) -> tuple[int, int]:
    """(saved searches, ``search.save`` audit records)."""
    with web.store.connect() as conn:
        n = conn.execute(select(func.count()).select_from(saved_searches)).scalar_one()
        saves = conn.execute(
            select(func.count()).select_from(audit_log).where(audit_log.c.action == "search.save")
        ).scalar_one()
    return int(n), int(saves)


def test_the_save_form_refuses_until_before_since_in_the_apis_words(web: Any) -> None:
    c = web.login("analyst")
    page = c.get("/posts", params={"q": "pay", **BACKWARDS})
    assert page.status_code == 200 and "is after To" in page.text  # the explorer stays lenient: a notice
    assert "Correct the search above to save it." in page.text and 'id="save-name"' not in page.text
    assert 'id="save-name"' in c.get("/posts", params={"q": "pay", "since": "2026-11-10"}).text
    filters = urlencode(BACKWARDS)  # the form as an older page (or a script) still posts it
    before = _counts(web)

    r = c.post("/searches", data={"name": "Never matches", "query": "pay", "filters": filters})
    assert r.status_code == 400  # a page saying why, not a 500 and not a silent save
    message = f"until: {UNTIL_BEFORE_SINCE}"
    assert message in r.text
    assert _counts(web) == before
    assert "Never matches" not in c.get("/posts").text

    api = bearer(web, "analyst").post("/api/v1/searches", json={"name": "Never", "filters": BACKWARDS})
    assert api.status_code == 422 and message in api.json()["error"]  # the same words from both
    assert _counts(web) == before

    one_day = c.post("/searches", data={"name": "One day", "filters": "since=2026-11-20&until=2026-11-20"})
    assert one_day.status_code == 303  # the same day is a one-day range, saved
    assert _counts(web) == (before[0] + 1, before[1] + 1)
