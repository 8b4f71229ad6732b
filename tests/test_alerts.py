"""Spike alerts: the seasonal baseline, sensitivity, cooldown, what an alert links, and the CLI's JSON."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner

from openear import alerts, triage
from openear.channels import Outbox
from openear.store.schema import alerts as alerts_table
from openear.store.schema import case_events, case_posts, cases
from openear.triage.config import AlertConfig

NOW = datetime(2026, 11, 30, 6, 0)  # a Monday morning


def weekly(days: int, *, weekday: float = 10, weekend: float = 3, trend: float = 0.0, seed: int = 1) -> list[int]:
    rnd = random.Random(seed)
    out = []
    for d in range(days):
        lam = (weekend if d % 7 in (5, 6) else weekday) * (1 + trend * d)
        # Poisson by inversion (small lambdas)
        x, p, s, u = 0, pow(2.718281828, -lam), 0.0, rnd.random()
        s = p
        while u > s:
            x += 1
            p *= lam / x
            s += p
        out.append(x)
    return out


def test_baseline_follows_the_weekly_rhythm() -> None:
    week = [10, 10, 10, 10, 10, 3, 3]  # Monday first
    monday = alerts.seasonal_baseline(week * 4, 7)
    saturday = alerts.seasonal_baseline((week * 5)[:33], 7)
    assert 8.5 < monday.expected < 11 and 2 < saturday.expected < 4.5
    noisy = alerts.seasonal_baseline(weekly(56), 7)  # Poisson noise around the same rhythm
    assert 6 < noisy.expected < 13


def test_baseline_follows_a_trend_and_ignores_an_earlier_spike() -> None:
    rising = [10 + d for d in range(28)]
    assert 36 < alerts.seasonal_baseline(rising, 7, damping=1.0).expected < 41  # the full trend: 38 next
    assert 28 < alerts.seasonal_baseline(rising, 7).expected < 36  # the default damps it (half the slope)
    spiky = [10] * 28
    spiky[20] = 200
    assert alerts.seasonal_baseline(spiky, 7).expected < 12


def test_seasonal_detector_ignores_weekday_peaks_that_fool_mean_3_sigma() -> None:
    quiet_weekends = [30 if d % 7 not in (5, 6) else 0 for d in range(28)]
    base = alerts.seasonal_baseline(quiet_weekends, 7)
    k, m, r = AlertConfig().thresholds
    assert not alerts.is_spike(33, base, k, m, r)
    assert alerts.is_spike(80, base, k, m, r)
    # the plain detector on the weekend-only window (a Monday after a quiet weekend) fires on a normal Monday
    assert alerts.mean_sigma_peak([0, 0, 0, 0], 30)


@pytest.mark.parametrize("sensitivity,fires", [("low", False), ("medium", True), ("high", True)])
def test_sensitivity_presets(sensitivity: str, fires: bool) -> None:
    base = alerts.Baseline(expected=4.0, sigma=2.2)
    k, m, r = AlertConfig(sensitivity=sensitivity).thresholds
    assert alerts.is_spike(11, base, k, m, r) is fires


def test_top_terms_are_what_the_spike_talks_about() -> None:
    spike = ["app crash after update 4.12", "crash on scan after update", "the update crash again"] * 3
    background = ["tips missing this week", "long wait at the station", "great customer today"] * 10
    terms = alerts.top_terms(spike, background)
    assert terms[:2] == ["crash", "update"] or set(terms[:2]) == {"crash", "update"}
    assert "the" not in terms and "user" not in alerts.top_terms(["[user] [user] said"] * 3, [])


# -- on a store ---------------------------------------------------------------------------------------------------
def _rows(ws: Any) -> None:
    ws.import_rows(_spiky_rows())


def _spiky_rows() -> list[dict[str, Any]]:
    """35 quiet days (3 posts a weekday, 1 a weekend day) and 25 posts about a crashing app 3 days before NOW."""
    rnd = random.Random(5)
    rows = []
    i = 0
    for day in range(35, 0, -1):
        when = NOW - timedelta(days=day)
        n = 3 if when.weekday() < 5 else 1
        if day == 3:
            n = 25  # the injected spike
        for k in range(n):
            text = (
                f"app keeps crashing on scan since update number {i}"
                if day == 3
                else f"route {rnd.randint(1, 999)} was long today, station wait {i}"
            )
            rows.append(
                {
                    "id": f"p{i}",
                    "text": text,
                    "author": f"a{i}",
                    "lang": "en",
                    "created_at": (when.replace(hour=8) + timedelta(minutes=20 * k)).isoformat() + "Z",
                }
            )
            i += 1
    return rows


@pytest.fixture
def spiky(workspace: Any) -> Any:
    workspace.store.migrate()
    _rows(workspace)
    with workspace.store.begin() as conn:  # the import's own triage pass (real clock) may have stored some
        conn.execute(delete(alerts_table))
    return workspace


def test_detect_finds_the_injected_spike_links_posts_and_respects_cooldown(spiky: Any) -> None:
    cfg = AlertConfig(dimensions=("source",), granularities=("day",))
    with spiky.store.begin() as conn:
        found = alerts.detect(conn, cfg, now=NOW)
        assert [(a["dimension"], a["value"], a["bucket_start"].date()) for a in found] == [
            ("source", "test-source", (NOW - timedelta(days=3)).date())
        ]
        a = found[0]
        assert a["observed"] == 25 and a["expected"] < 5 and len(a["post_ids"]) == 25
        assert {"crashing", "scan"} <= set(a["terms"])
        assert alerts.detect(conn, cfg, now=NOW) == []  # stored: not found twice
        assert alerts.detect(conn, cfg, now=NOW + timedelta(days=1)) == []
        assert alerts.acknowledge(conn, a["id"], actor="ana") and not alerts.acknowledge(conn, 999, actor="ana")
        assert alerts.list_alerts(conn)[0]["status"] == "acknowledged"
        assert "Spike in source test-source: 25 posts on" in alerts.describe(a)


def _import_without_triage(ws: Any, rows: list[dict[str, Any]], name: str) -> None:
    """Import as ``import_rows`` does, minus the triage pass after the run (it would use the real clock)."""
    from openear.pipeline import Pipeline, import_file
    from openear.settings import SourceSpec

    pipe = Pipeline.for_settings(ws.settings, ws.store, mode="rules")
    pipe.after_run = None
    spec = SourceSpec("test-source", connector="files", visibility="public", kind="social")
    import_file(ws.settings, ws.store, ws.write_jsonl(name, rows), "jsonl", spec, pipeline=pipe)


def test_an_alert_and_its_case_follow_posts_that_reach_its_bucket_later(workspace: Any) -> None:
    """A second source's run (or a late feed) adds posts to a bucket already alerted: the alert's counts, posts and
    terms follow, its case gets the posts and the new count in its title, and nobody is alerted twice."""
    workspace.store.migrate()
    rows = _spiky_rows()
    spike = [r for r in rows if "crashing" in r["text"]]
    late = {r["id"] for r in spike[8:]}
    _import_without_triage(workspace, [r for r in rows if r["id"] not in late], "first.jsonl")
    cfg = triage.parse_triage({"alerts": {"dimensions": ["category"], "granularities": ["day"]}})
    first = triage.run(workspace.store, cfg, now=NOW, notifier=Outbox())
    assert [(a["value"], a["observed"]) for a in first.alerts] == [("app_issue", 8)]
    alert, case_id = first.alerts[0], first.alerts[0]["case_id"]
    with workspace.store.connect() as conn:
        assert "8 posts" in conn.execute(select(cases.c.title).where(cases.c.id == case_id)).scalar()

    _import_without_triage(workspace, [r for r in rows if r["id"] in late], "late.jsonl")
    box = Outbox()
    second = triage.run(workspace.store, cfg, now=NOW, notifier=box)
    assert second.alerts == []  # recounted, not raised again
    assert not [m for _, m in box.sent if m.subject.startswith("[openear] Spike")]
    # the case grew from 8 to 25 posts at once: the volume rule now escalates it to management
    assert [(t.name, m.fields["rule"]) for t, m in box.sent] == [("Management", "volume")]
    assert [(a["id"], a["observed"], a["previous"]) for a in second.refreshed] == [
        (alert["id"], 25, alerts.describe(alert))
    ]
    with workspace.store.connect() as conn:
        stored = alerts.get_alert(conn, alert["id"])
        assert stored["observed"] == 25 and len(stored["post_ids"]) == 25 and stored["expected"] == alert["expected"]
        assert stored["score"] > alert["score"] and stored["status"] == "open"
        linked = set(conn.execute(select(case_posts.c.post_id).where(case_posts.c.case_id == case_id)).scalars())
        assert set(stored["post_ids"]) <= linked
        title = conn.execute(select(cases.c.title).where(cases.c.id == case_id)).scalar()
        assert title == alerts.describe(stored) and "25 posts" in title
        kinds = list(conn.execute(select(case_events.c.kind).where(case_events.c.case_id == case_id)).scalars())
        assert kinds.count("retitled") == 1

    # nothing new: nothing changes; an analyst's own title is never overwritten
    assert triage.run(workspace.store, cfg, now=NOW, notifier=Outbox()).refreshed == []
    with workspace.store.begin() as conn:
        conn.execute(cases.update().where(cases.c.id == case_id).values(title="Scanner crash after 4.2 update"))
    _import_without_triage(workspace, [{**spike[0], "id": "one-more", "author": "z"}], "more.jsonl")
    third = triage.run(workspace.store, cfg, now=NOW, notifier=Outbox())
    assert [a["observed"] for a in third.refreshed] == [26]
    with workspace.store.connect() as conn:
        assert conn.execute(select(cases.c.title).where(cases.c.id == case_id)).scalar() == (
            "Scanner crash after 4.2 update"
        )


def test_quiet_series_raise_no_alert(spiky: Any) -> None:
    cfg = AlertConfig(dimensions=("source",), granularities=("day", "hour"), lookback_days=2)
    with spiky.store.begin() as conn:
        assert alerts.detect(conn, cfg, now=NOW) == []


def test_cli_lists_alerts_and_cases_as_json(spiky: Any) -> None:
    from openear.cli import app

    runner = CliRunner()
    home = ["--home", str(spiky.home)]
    r = runner.invoke(app, [*home, "cases", "sync", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*home, "alerts", "list", "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output)
    assert any(a["dimension"] == "source" for a in listed)
    r = runner.invoke(app, [*home, "cases", "list", "--json", "--status", "open"])
    assert r.exit_code == 0 and isinstance(json.loads(r.output), list)
    r = runner.invoke(app, [*home, "cases", "open", "--post", "1", "--title", "Scan crash", "--priority", "high"])
    assert r.exit_code == 0, r.output
    case_id = int(r.output.split("#")[1])
    for args in (
        ["status", str(case_id), "investigating", "--note", "on it"],
        ["assign", str(case_id), "admin"],
        ["note", str(case_id), "asked the app team"],
    ):
        assert runner.invoke(app, [*home, "cases", *args]).exit_code == 0
    r = runner.invoke(app, [*home, "cases", "show", str(case_id), "--json"])
    shown = json.loads(r.output)
    assert shown["status"] == "investigating" and shown["assignee"] == "admin"
    assert [e["kind"] for e in shown["events"]][-3:] == ["status", "assigned", "note"]
    bad = runner.invoke(app, [*home, "cases", "status", str(case_id), "new"])
    assert bad.exit_code == 2 and "cannot go from investigating to new" in bad.output


def test_describing_an_alert_does_not_load_the_chart_library() -> None:
    """The triage pass after every import describes alerts; matplotlib (~0.5 s to import) is for reports only."""
    import subprocess
    import sys

    code = (
        "import sys, datetime\n"
        "from openear import alerts\n"
        "a = {'bucket_start': datetime.datetime(2026, 11, 24), 'granularity': 'day', 'dimension': 'category',\n"
        "     'value': 'app_issue', 'observed': 19, 'expected': 2.1, 'terms': ['crash'], 'post_ids': [1],\n"
        "     'cluster_ids': [], 'id': 1, 'score': 5.0}\n"
        "assert alerts.describe(a) == 'Spike in App issue: 19 posts on 2026-11-24 (expected 2.1)'\n"
        "alerts.alert_message(a)\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
