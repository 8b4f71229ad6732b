"""``openear reenrich``: labels after a run carry the current enrichers' provenance, analyst overrides stay, a second
run changes nothing, and an interrupted run keeps its committed batches and resumes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from labelled import TAILS, THEMES, invoke, labelled_store, write_labelled
from openear.enrich.sentiment import load_sentiment
from openear.reenrich import reenrich
from openear.store.schema import labels, post_rollups, posts, runs


def _setup(workspace: Any, tmp_path: Path) -> dict[str, int]:
    """Posts imported in rules mode (no trained model then); an analyst overrides two of them."""
    rows = []
    for i in range(14):
        base = THEMES["app_issue" if i % 2 else "safety"]
        rows.append(
            {
                "id": f"p{i}",
                "text": f"{base[i % 5]}, {TAILS[(i + 3) % 12]} (report {i})",
                "created_at": f"2026-11-{(i % 9) + 10:02d}T10:00:00Z",
                "author": f"a{i}",
            }
        )
    rows.append(
        {
            "id": "old",
            "text": "the blue screen froze in the old days",
            "created_at": "2026-10-01T10:00:00Z",
            "author": "b",
        }
    )
    rows.append(
        {
            "id": "tips",
            "text": "my tips were missing from the app, I hate this",
            "author": "c",
            "created_at": "2026-11-12T10:00:00Z",
        }
    )
    overrides = {"p1": {"primary": "support"}, "p2": {"sentiment": "positive"}}
    ids = labelled_store(workspace, rows, overrides, source="s", mode="rules")
    f = write_labelled(tmp_path / "labels.jsonl", {"app_issue": 12, "safety": 12})
    assert invoke(workspace.home, "train", "--from", str(f), "--features", "tfidf", "--yes").exit_code == 0
    return ids


def _labels(workspace: Any) -> dict[int, set[tuple[str, str, str]]]:
    out: dict[int, set[tuple[str, str, str]]] = {}
    with workspace.store.connect() as conn:
        for pid, name, value, enricher in conn.execute(
            select(labels.c.post_id, labels.c.name, labels.c.value, labels.c.enricher)
        ):
            out.setdefault(pid, set()).add((name, value, enricher))
    return out


def _columns(workspace: Any) -> dict[int, tuple[str, str]]:
    with workspace.store.connect() as conn:
        return {pid: (c, s) for pid, c, s in conn.execute(select(posts.c.id, posts.c.category, posts.c.sentiment))}


def test_reenrich_relabels_with_provenance_keeps_overrides_and_is_idempotent(
    db_url: str, workspace: Any, tmp_path: Path
) -> None:
    ids = _setup(workspace, tmp_path)
    before = _labels(workspace)
    assert not any(e.startswith("trained@") for ls in before.values() for _, _, e in ls)

    result = invoke(
        workspace.home, "reenrich", "--since", "2026-11-01", "--until", "2026-12-01", "--mode", "fast", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["scanned"] == 15  # not the October post
    assert summary["enrichers"] == ["lang-fasttext-lite@1", "taxonomy-rules@1", "trained@v1", "sentiment-fast@1"]
    # the rules call 5 screen posts "other" (the dog posts are safety already): the model relabels those; the
    # language detector is the one that imported them, so no language changes
    assert summary["changed"]["sentiment"] == 15 and summary["changed"]["primary"] >= 5
    assert summary["changed"]["lang"] == 0
    after = _labels(workspace)
    cols = _columns(workspace)
    for ext, pid in ids.items():
        sentiment = {e for n, _, e in after[pid] if n == "sentiment"}
        if ext == "old":  # outside the window: untouched
            assert after[pid] == before[pid]
            continue
        assert "sentiment-fast@1" in sentiment and not any(e.startswith("sentiment-hashlr@") for e in sentiment)
    screen = ids["p3"]  # a screen post the rules called "other"
    assert ("primary", "app_issue", "trained@v1") in after[screen] and cols[screen][0] == "app_issue"
    assert all(
        e in ("taxonomy-rules@1", "trained@v1")
        for n, _, e in after[ids["tips"]]
        if n in ("category", "subcategory", "primary")
    )
    assert ("category", "pay_tips", "taxonomy-rules@1") in after[ids["tips"]]
    # analyst overrides: their labels and the columns they set survive
    assert ("primary", "support", "analyst@ana") in after[ids["p1"]] and cols[ids["p1"]][0] == "support"
    assert ("primary", "app_issue", "trained@v1") in after[ids["p1"]]  # the machine's view is kept beside it
    assert ("sentiment", "positive", "analyst@ana") in after[ids["p2"]] and cols[ids["p2"]][1] == "positive"

    again = invoke(workspace.home, "reenrich", "--since", "2026-11-01", "--until", "2026-12-01", "--json")
    summary = json.loads(again.output.strip().splitlines()[-1])
    assert summary["posts_changed"] == 0 and set(summary["changed"].values()) == {0}
    assert _labels(workspace) == after

    table = invoke(workspace.home, "reenrich", "--since", "2026-11-01", "--until", "2026-12-01", "--only", "categories")
    assert table.exit_code == 0 and "0 posts changed" in table.output and "primary" in table.output


def test_an_interrupted_run_keeps_its_batches_and_resumes(db_url: str, workspace: Any, tmp_path: Path) -> None:
    _setup(workspace, tmp_path)
    since = datetime(2026, 11, 1)
    seen: list[int] = []

    def stop_after_two(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reenrich(
            workspace.store,
            workspace.settings,
            since=since,
            since_spec="2026-11-01",
            mode="rules",
            only="categories",
            batch_size=4,
            progress=stop_after_two,
        )
    with workspace.store.connect() as conn:
        run = conn.execute(select(runs.c.status, runs.c.stats).where(runs.c.kind == "reenrich")).one()
    state = json.loads(run.stats)
    assert run.status == "partial" and state["scanned"] == 8
    done = _labels(workspace)
    first_eight = sorted(done)[:8]

    resumed = reenrich(
        workspace.store,
        workspace.settings,
        since=since,
        since_spec="2026-11-01",
        mode="rules",
        only="categories",
        batch_size=4,
    )
    assert resumed.resumed_after == state["last_id"] and resumed.scanned == 7
    final = _labels(workspace)
    assert all(final[p] == done[p] for p in first_eight)  # the committed batches were not redone
    assert any(("primary", "app_issue", "trained@v1") in final[p] for p in sorted(final)[8:])
    fresh = reenrich(
        workspace.store,
        workspace.settings,
        since=since,
        since_spec="2026-11-01",
        mode="rules",
        only="categories",
        batch_size=4,
    )
    assert fresh.resumed_after is None and fresh.scanned == 15 and fresh.posts_changed == 0


def test_reenrich_rejects_bad_options(workspace: Any) -> None:
    assert "--only" in invoke(workspace.home, "reenrich", "--since", "7d", "--only", "everything").output
    assert "--mode" in invoke(workspace.home, "reenrich", "--since", "7d", "--mode", "slow").output
    bad = invoke(workspace.home, "reenrich", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_reenrich_language_relabels_the_column_and_the_rollups_and_keeps_short_texts(
    db_url: str, workspace: Any
) -> None:
    """Posts labelled by an older language detector: ``--only language`` relabels them (column, label, rollups),
    keeps a text too short to tell, and leaves the other labels alone; a second run changes nothing."""
    rows = [
        {"id": "es", "text": "la aplicación se cerró otra vez y perdí el pedido de la tarde", "author": "a",
         "created_at": "2026-11-12T10:00:00Z"},
        {"id": "en", "text": "the app crashed again and I lost the evening order", "author": "b",
         "created_at": "2026-11-12T11:00:00Z"},
        {"id": "short", "text": "ok", "author": "c", "created_at": "2026-11-12T12:00:00Z", "lang": "es"},
    ]
    ids = labelled_store(workspace, rows, {}, source="s", mode="rules")
    with workspace.store.begin() as conn:  # as an older detector left them: the Spanish post called English
        conn.execute(posts.update().where(posts.c.id.in_([ids["es"], ids["short"]])).values(lang="en"))
        conn.execute(labels.update().where(labels.c.name == "lang").values(value="en", enricher="lang-old@0"))
    others = {pid: {x for x in ls if x[0] != "lang"} for pid, ls in _labels(workspace).items()}

    result = invoke(workspace.home, "reenrich", "--since", "2026-11-01", "--only", "language", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["enrichers"] == ["lang-fasttext-lite@1"] and summary["changed"] == {"lang": 3}
    after = _labels(workspace)
    assert {x for x in after[ids["es"]] if x[0] == "lang"} == {("lang", "es", "lang-fasttext-lite@1")}
    assert {x for x in after[ids["en"]] if x[0] == "lang"} == {("lang", "en", "lang-fasttext-lite@1")}
    # "ok" is too short to tell: the stored language is the hint, so it stays "en" (now with today's provenance)
    assert {x for x in after[ids["short"]] if x[0] == "lang"} == {("lang", "en", "lang-fasttext-lite@1")}
    assert {pid: {x for x in ls if x[0] != "lang"} for pid, ls in after.items()} == others
    with workspace.store.connect() as conn:
        langs = dict(conn.execute(select(posts.c.external_id, posts.c.lang)).all())
        rollup = {r.value: r.n for r in conn.execute(select(post_rollups).where(post_rollups.c.dim == "lang"))
                  if r.n}
    assert langs == {"es": "es", "en": "en", "short": "en"}
    assert rollup == {"es": 1, "en": 2}  # the dashboard's rollups follow the column (by trigger)

    again = invoke(workspace.home, "reenrich", "--since", "2026-11-01", "--only", "language", "--json")
    assert json.loads(again.output.strip().splitlines()[-1])["changed"] == {"lang": 0}


def test_reenrich_all_scores_sentiment_with_the_new_language(db_url: str, workspace: Any) -> None:
    """In ``all``, the sentiment of a post whose language changed is computed with the new language (the
    sentiment models weigh languages apart), not with the one stored before."""
    text = "la aplicación se cerró otra vez y perdí el pedido de la tarde, qué desastre"
    ids = labelled_store(workspace, [{"id": "es", "text": text, "author": "a", "created_at": "2026-11-12T10:00:00Z"}],
                         {}, source="s", mode="rules")
    with workspace.store.begin() as conn:  # an older detector called it English, older models labelled it
        conn.execute(posts.update().values(lang="en"))
        conn.execute(labels.update().where(labels.c.name == "lang").values(value="en", enricher="lang-old@0"))
        conn.execute(labels.update().where(labels.c.name == "sentiment").values(enricher="sentiment-old@0"))
    model = load_sentiment("rules")
    as_spanish, as_english = model.predict([text], ["es"])[0], model.predict([text], ["en"])[0]
    assert as_spanish != as_english  # the language matters to the model, so the check below can tell

    result = invoke(workspace.home, "reenrich", "--since", "2026-11-01", "--mode", "rules", "--json")
    assert result.exit_code == 0, result.output
    with workspace.store.connect() as conn:
        got = conn.execute(select(labels.c.value, labels.c.score).where(
            labels.c.post_id == ids["es"], labels.c.name == "sentiment")).one()
    assert (got.value, round(got.score, 4)) == as_spanish
