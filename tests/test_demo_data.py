"""The bundled synthetic demo sample (``src/openear/data/demo/posts.jsonl``) and its generator."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "openear" / "data" / "demo" / "posts.jsonl"
SCRIPT = ROOT / "scripts" / "make_demo_data.py"

DEMO_SOURCES = {"reddit-flexdrivers", "driver-forum", "foro-repartidores", "news-en", "noticias-es"}
FIELDS = {"id", "text", "created_at", "url", "kind", "lang", "country", "visibility", "source", "synthetic"}

# Every taxonomy category's vocabulary, in both languages: (category, kind, English words, Spanish words).
FAMILIES: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    ("app_issue", "social", ("crash", "freez", "gps", "log in", "scan"), ("se cuelga", "se cierra", "gps", "escane")),
    ("pay_tips", "social", ("tip", "pay", "rates"), ("propina", "tarifa", "pago")),
    ("scheduling_offers", "social", ("block", "offers"), ("bloque", "ofertas")),
    ("delivery_operations", "social", ("station", "depot", "route", "stops"), ("estación", "ruta", "paradas")),
    ("account_status", "social", ("deactivat", "standing", "background check"), ("desactiv", "valoración")),
    ("support", "social", ("support",), ("soporte",)),
    ("safety", "social", ("dog", "ice", "storm", "accident", "rear-ended"), ("perro", "tormenta", "resbalé")),
    ("working_conditions", "social", ("heat", "breaks", "pressure"), ("calor", "descansos", "presión")),
    ("media_coverage", "news", ("parcelo", "drivers", "couriers"), ("parcelo", "repartidores")),
    ("other", "social", ("thank", "love", "new driver"), ("gracias", "nuevo en")),
]
PROTECTED_EN = ("union", "strike", "petition", "protest", "log off", "researcher", "survey", "journalist", "phd")
PROTECTED_ES = ("huelga", "sindicato", "manifestación", "firmas", "desconexión", "periodista", "encuesta", "tesis")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    assert SAMPLE.exists(), f"{SAMPLE} missing: run python scripts/make_demo_data.py"
    out = []
    with SAMPLE.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.endswith("\n"), f"line {n}: no newline"
            out.append(json.loads(line))
    return out


def _has(rows: list[dict[str, Any]], words: tuple[str, ...]) -> int:
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    return sum(1 for r in rows if pattern.search(f"{r.get('title') or ''} {r['text']}"))


def test_sample_is_small_enough_to_ship() -> None:
    assert SAMPLE.stat().st_size < 1_500_000


def test_valid_json_lines_in_the_import_format(rows: list[dict[str, Any]]) -> None:
    assert 1900 <= len(rows) <= 2100
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    for r in rows:
        assert r.keys() >= FIELDS, r["id"]
        assert r["synthetic"] is True
        assert isinstance(r["text"], str) and r["text"].strip()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created_at"])
        assert r["kind"] in ("social", "news")
        assert r["lang"] in ("en", "es")
        assert r["country"] in ("US", "GB", "ES")
        assert r["visibility"] in ("public", "consented", "private", "closed", "secret")
        assert r["source"] in DEMO_SOURCES
        assert r["url"].startswith("https://")
        if r["kind"] == "news":
            assert r["title"] and "author" not in r
            assert r["source"] in ("news-en", "noticias-es")
        else:
            assert "title" not in r and re.fullmatch(r"[a-z0-9_]+", r["author"])


def test_dates_span_the_sixty_days_before_the_anchor(rows: list[dict[str, Any]]) -> None:
    times = sorted(r["created_at"] for r in rows)
    assert times[0] >= "2026-09-29T23:00:00Z"
    assert times[-1] <= "2026-11-28T23:00:00Z"
    assert len({t[:10] for t in times}) == 60


def test_language_and_kind_mix(rows: list[dict[str, Any]]) -> None:
    langs = Counter(r["lang"] for r in rows)
    assert 0.5 <= langs["en"] / len(rows) <= 0.7
    news = [r for r in rows if r["kind"] == "news"]
    assert 0.07 <= len(news) / len(rows) <= 0.13
    assert {r["lang"] for r in news} == {"en", "es"}
    sources = Counter(r["source"] for r in rows)
    assert set(sources) == DEMO_SOURCES


@pytest.mark.parametrize(("category", "kind", "en", "es"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_category_in_both_languages(
    rows: list[dict[str, Any]], category: str, kind: str, en: tuple[str, ...], es: tuple[str, ...]
) -> None:
    of_kind = [r for r in rows if r["kind"] == kind]
    assert _has([r for r in of_kind if r["lang"] == "en"], en) >= 5
    assert _has([r for r in of_kind if r["lang"] == "es"], es) >= 5
    truth = [r for r in of_kind if r.get("synthetic_truth", {}).get("category") == category]
    assert {r["lang"] for r in truth} == {"en", "es"}


def test_private_items_are_present(rows: list[dict[str, Any]]) -> None:
    private = [r for r in rows if r["visibility"] in ("private", "closed", "secret")]
    assert 0.02 <= len(private) / len(rows) <= 0.05
    assert {r["visibility"] for r in private} == {"private", "closed", "secret"}


def test_protected_topic_items_are_present_and_the_guard_withholds_them(rows: list[dict[str, Any]]) -> None:
    from openear.guard import ProtectedTopicDetector

    social = [r for r in rows if r["kind"] == "social"]
    protected = [r for r in social if "protected" in r["synthetic_truth"]]
    assert 0.03 <= len(protected) / len(social) <= 0.07
    assert {r["synthetic_truth"]["protected"] for r in protected} == {"collective_action", "research_press_contact"}
    assert _has([r for r in protected if r["lang"] == "en"], PROTECTED_EN) >= 5
    assert _has([r for r in protected if r["lang"] == "es"], PROTECTED_ES) >= 5
    detector = ProtectedTopicDetector()
    missed = [r["text"] for r in protected if detector.detect(r["text"]) is None]
    assert not missed, missed[:5]
    # and ordinary driver talk is not mistaken for it (the demo would lose most of its posts otherwise)
    flagged = [r["text"] for r in social if "protected" not in r["synthetic_truth"] and detector.detect(r["text"])]
    assert len(flagged) <= 0.01 * len(social), flagged[:5]


def test_news_about_a_strike_is_present(rows: list[dict[str, Any]]) -> None:
    news = [r for r in rows if r["kind"] == "news"]
    assert _has([r for r in news if r["lang"] == "en"], ("strike", "walkout", "stop work")) >= 2
    assert _has([r for r in news if r["lang"] == "es"], ("huelga", "paros")) >= 2


def test_app_outage_spike(rows: list[dict[str, Any]]) -> None:
    days = sorted({r["created_at"][:10] for r in rows})
    app = Counter(r["created_at"][:10] for r in rows if r["synthetic_truth"].get("category") == "app_issue")
    counts = [app.get(d, 0) for d in days]
    peak = max(counts)
    assert peak >= 4 * statistics.median(counts)
    assert days[counts.index(peak)] in ("2026-11-24", "2026-11-25")  # 3-4 days before the anchor
    crash = Counter(r["created_at"][:10] for r in rows
                    if re.search(r"crash|se cierra", r["text"], re.IGNORECASE))
    assert max(crash.values()) >= 4 * statistics.median([crash.get(d, 0) for d in days])


def test_weekends_are_busier(rows: list[dict[str, Any]]) -> None:
    from datetime import date

    per_weekday = Counter(date.fromisoformat(r["created_at"][:10]).weekday() for r in rows)
    assert min(per_weekday[5], per_weekday[6]) > max(per_weekday[d] for d in range(5))


def test_near_duplicate_groups(rows: list[dict[str, Any]]) -> None:
    groups = Counter(r["synthetic_truth"]["group"] for r in rows if "group" in r["synthetic_truth"])
    assert len(groups) >= 4
    assert all(10 <= n <= 45 for n in groups.values()), groups


def test_personal_data_and_hostile_strings_to_exercise_the_guard(rows: list[dict[str, Any]]) -> None:
    from openear.guard import scrub_text

    texts = [r["text"] for r in rows if r["kind"] == "social"]
    kinds = Counter(k for t in texts for k in scrub_text(t).kinds)
    for kind in ("email", "phone", "handle", "profile_url"):
        assert kinds[kind] >= 3, kinds
    joined = "\n".join(texts)
    for needle in ("<script>alert(1)</script>", '"quotes"', "😡", "ñ", "á"):
        assert needle in joined


def test_regenerating_gives_identical_bytes(tmp_path: Path) -> None:
    out = tmp_path / "posts.jsonl"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120)
    assert out.read_bytes() == SAMPLE.read_bytes()
