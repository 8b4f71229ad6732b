"""Spike alerts: hourly and daily post volume per category, source and language against a seasonal baseline.

The baseline (:func:`seasonal_baseline`) models weekly seasonality and a linear trend from the previous
``history_days``: per-phase seasonal indices (day of week, or hour of week), shrunk towards 1 where counts are
small; a least-squares trend on the de-seasonalised series after clipping earlier outliers (so a past spike does
not lift the baseline); and the series' over-dispersion (Pearson residuals) for the spread. A bucket is a spike
when it is at least ``k`` standard deviations, ``min_excess`` posts and ``min_ratio`` times above the expected
count (sensitivity presets in :data:`openear.triage.config.SENSITIVITY`). After an alert the same series stays
quiet for ``cooldown_hours``. :func:`mean_sigma_peak` is the common mean + 3σ peak detector, kept for the
benchmark (``benchmarks/alerts.py``).

An alert links the posts and clusters that drove it and the terms most over-represented in them. While its bucket
is in the scan window, :func:`refresh` recounts it when posts arrive later (another source's run, a late feed, a
backfill): the counts, posts and terms follow the store, and nobody is told again. Alerts are per
category, source or language: never per author (guardrail 5).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from openear.store.schema import alerts, posts
from openear.triage.config import AlertConfig

__all__ = [
    "Baseline",
    "Spike",
    "acknowledge",
    "alert_message",
    "detect",
    "get_alert",
    "is_spike",
    "list_alerts",
    "mean_sigma_peak",
    "refresh",
    "seasonal_baseline",
    "top_terms",
]

PERIODS = {"day": 7, "hour": 168}  # buckets per week
STEP = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
MAX_POSTS = 200
PLACEHOLDERS = frozenset({"user", "email", "phone"})  # the guard's scrubbed-text placeholders
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
STOPWORDS = frozenset(
    """
    about again all already also and any are been but can cant como con could cuando deja del desde didn doesn
    don dont entre esa ese eso esta este esto even for from get got hace had han has have hay hizo how i'm into
    isn its just las les lleva llevo los mas more muy más nos not now one only other our out para pero por
    porque que should sin since sobre some son still sus than that the their them then there they this today
    todo todos too una very was wasn were what when who why will with won would you your
    """.split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Baseline:
    expected: float
    sigma: float


@dataclass(frozen=True)
class Spike:
    """One bucket of one series that a detector flagged (not yet stored)."""

    dimension: str
    value: str
    granularity: str
    bucket_start: datetime
    observed: int
    expected: float
    score: float


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return 0.0
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _fit(xc: Sequence[float], period: int, prior: float) -> tuple[float, float, list[float], list[float], float]:
    """Least-squares trend and shrunk seasonal indices: (mean level, slope, indices, fitted values, dispersion)."""
    n = len(xc)
    seasonal = n >= 2 * period
    tbar = (n - 1) / 2
    sxx = sum((i - tbar) ** 2 for i in range(n)) or 1.0

    def line(values: Sequence[float]) -> tuple[float, float]:
        centre = sum(values) / n
        slope = sum((i - tbar) * (values[i] - centre) for i in range(n)) / sxx if seasonal else 0.0
        return centre, slope

    # seasonal indices (phase 0 = the target's phase): observed over trend, per phase, shrunk by ``prior``
    ybar, slope = line(xc)
    sums = [0.0] * period
    trend_sums = [0.0] * period
    for i, v in enumerate(xc):
        ph = (i - n) % period
        sums[ph] += v
        trend_sums[ph] += max(ybar + slope * (i - tbar), 0.0)
    season = [(sums[p] + prior) / (trend_sums[p] + prior) if seasonal else 1.0 for p in range(period)]
    norm = sum(season) / period or 1.0
    season = [v / norm for v in season]
    # the trend again, on the de-seasonalised series
    ybar, slope = line([v / season[(i - n) % period] if season[(i - n) % period] > 0 else v for i, v in enumerate(xc)])
    fitted = [max((ybar + slope * (i - tbar)) * season[(i - n) % period], 0.5) for i in range(n)]
    phi = sum((xc[i] - fitted[i]) ** 2 / fitted[i] for i in range(n)) / max(n - 2, 1)
    return ybar, slope, season, fitted, min(max(phi, 1.0), 25.0)


def seasonal_baseline(
    history: Sequence[float], period: int = 7, prior: float = 3.0, damping: float = 0.5, unc: float = 1.0
) -> Baseline:
    """The expected count (and its spread) of the bucket right after ``history`` (oldest first).

    ``period`` is the seasonal cycle in buckets (7 for days, 168 for hours); ``prior`` pseudo-counts shrink the
    seasonal indices towards 1 for sparse series; ``damping`` scales the trend's slope when forecasting; ``unc``
    widens the spread for the forecast's own error, which shrinks with more weeks of history. Past spikes are
    clipped to the first fit's upper band before the final fit, so they lift neither the level nor the spread.
    """
    n = len(history)
    if n == 0:
        return Baseline(0.0, 1.0)
    x = [float(v) for v in history]
    med = _median(x)
    mad = _median([abs(v - med) for v in x]) or 1.0
    xc = [min(v, med + max(4 * 1.4826 * mad, 3.0)) for v in x]  # a first, rough clip
    _, _, _, fitted, phi = _fit(xc, period, prior)
    xc = [min(v, f + 3 * math.sqrt(phi * max(f, 1.0))) for v, f in zip(x, fitted, strict=True)]
    ybar, slope, season, _, phi = _fit(xc, period, prior)
    level = ybar + damping * slope * (n - (n - 1) / 2)  # a damped trend: a noisy slope is not extrapolated in full
    level = max(level, 0.25 * ybar, 0.0)  # a falling trend never forecasts below a quarter of the mean
    expected = level * season[0]
    weeks = max(n / period, 1.0)
    sigma = math.sqrt(phi * (expected + 1.0) * (1.0 + unc / weeks))
    return Baseline(expected, sigma)


def is_spike(observed: float, base: Baseline, k: float, min_excess: int, min_ratio: float) -> bool:
    """The seasonal detector's verdict for one bucket."""
    excess = observed - base.expected
    return excess >= k * base.sigma and excess >= min_excess and observed >= min_ratio * max(base.expected, 1.0)


def mean_sigma_peak(history: Sequence[float], observed: float, k: float = 3.0) -> bool:
    """The common peak detector (Huginn's PeakDetectorAgent): strictly above the mean of ``history`` plus ``k``
    population standard deviations."""
    if len(history) < 2:
        return False
    mean = sum(history) / len(history)
    sd = math.sqrt(sum((v - mean) ** 2 for v in history) / len(history))
    return observed > mean + k * sd


# -- reading the store -------------------------------------------------------------------------------------------
def _floor(t: datetime, granularity: str) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if granularity == "day" else t


def _naive(now: datetime | None) -> datetime:
    value = now or datetime.now(UTC)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _series_rows(conn: Connection, since: datetime, until: datetime) -> list[Any]:
    return conn.execute(
        select(posts.c.created_at, posts.c.category, posts.c.source, posts.c.lang).where(
            posts.c.created_at >= since, posts.c.created_at < until
        )
    ).all()


def detect(
    conn: Connection, cfg: AlertConfig, *, now: datetime | None = None, store_alerts: bool = True
) -> list[dict[str, Any]]:
    """Look for spikes in the complete buckets of the last ``lookback_days``; store and return new alerts."""
    t = _naive(now)
    k, min_excess, min_ratio = cfg.thresholds
    found: list[Spike] = []
    for gran in cfg.granularities:
        step = STEP[gran]
        end = _floor(t, gran)
        hist_n, scan_n = _windows(cfg, gran)
        start = end - step * (hist_n + scan_n)
        rows = _series_rows(conn, start, end)
        series: dict[tuple[str, str], list[int]] = {}
        total = hist_n + scan_n
        for created, category, source, lang in rows:
            idx = int((created - start) / step)
            if not 0 <= idx < total:
                continue
            for dim, val in (("category", category), ("source", source), ("lang", lang)):
                if dim in cfg.dimensions and val:
                    series.setdefault((dim, val), [0] * total)[idx] += 1
        for (dim, val), counts in sorted(series.items()):
            last_alert = _last_alert(conn, dim, val, gran)
            for j in range(hist_n, total):
                obs = counts[j]
                if obs < min_excess:
                    continue
                bucket = start + step * j
                if last_alert is not None and bucket < last_alert + step + timedelta(hours=cfg.cooldown_hours):
                    continue
                base = seasonal_baseline(counts[j - hist_n : j], PERIODS[gran])
                if is_spike(obs, base, k, min_excess, min_ratio):
                    found.append(Spike(dim, val, gran, bucket, obs, base.expected, (obs - base.expected) / base.sigma))
                    last_alert = bucket
    if not store_alerts:
        return [s.__dict__ for s in found]
    return [_store(conn, s, t) for s in found]


def _last_alert(conn: Connection, dim: str, val: str, gran: str) -> datetime | None:
    return conn.execute(
        select(alerts.c.bucket_start)
        .where(alerts.c.dimension == dim, alerts.c.value == val, alerts.c.granularity == gran)
        .order_by(alerts.c.bucket_start.desc())
        .limit(1)
    ).scalar()


_COLUMNS = {"category": posts.c.category, "source": posts.c.source, "lang": posts.c.lang}


def refresh(conn: Connection, cfg: AlertConfig, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Recount the stored alerts whose bucket is still in the scan window of :func:`detect`.

    Posts of a bucket can arrive after its alert: another source's run a minute later, a late feed, a backfill. The
    alert's observed count, expected count, score, posts, clusters and terms then follow the store (its status
    does not change, and nobody is told again). Returns the alerts that changed, each with ``previous``: its
    description before the change (:func:`describe`).
    """
    t = _naive(now)
    changed: list[dict[str, Any]] = []
    for gran in cfg.granularities:
        step = STEP[gran]
        end = _floor(t, gran)
        hist_n, scan_n = _windows(cfg, gran)
        stored = conn.execute(
            select(alerts).where(
                alerts.c.granularity == gran, alerts.c.bucket_start >= end - step * scan_n, alerts.c.bucket_start < end
            )
        ).mappings().all()
        for row in stored:
            col, bucket = _COLUMNS[row["dimension"]], row["bucket_start"]
            since = bucket - step * hist_n
            counts = [0] * (hist_n + 1)
            for created in conn.execute(
                select(posts.c.created_at).where(
                    col == row["value"], posts.c.created_at >= since, posts.c.created_at < bucket + step
                )
            ).scalars():
                idx = int((created - since) / step)
                if 0 <= idx <= hist_n:
                    counts[idx] += 1
            if counts[hist_n] == row["observed"]:
                continue
            base = seasonal_baseline(counts[:hist_n], PERIODS[gran])
            spike = Spike(row["dimension"], row["value"], gran, bucket, counts[hist_n], base.expected,
                          (counts[hist_n] - base.expected) / base.sigma)
            values = _evidence(conn, spike)
            conn.execute(update(alerts).where(alerts.c.id == row["id"]).values(**values))
            before = _decode(dict(row))
            changed.append({**before, **_decode(values), "previous": describe(before)})
    return changed


def _windows(cfg: AlertConfig, gran: str) -> tuple[int, int]:
    """Buckets of history behind each scanned bucket, and buckets scanned (the last ``lookback_days``)."""
    hist_n = cfg.history_days if gran == "day" else min(cfg.history_days, 28) * 24
    return hist_n, cfg.lookback_days * (1 if gran == "day" else 24)


def _store(conn: Connection, s: Spike, now: datetime) -> dict[str, Any]:
    values = {
        "dimension": s.dimension,
        "value": s.value,
        "granularity": s.granularity,
        "bucket_start": s.bucket_start,
        "status": "open",
        "created_at": now,
        **_evidence(conn, s),
    }
    values["id"] = int(conn.execute(insert(alerts).values(**values)).inserted_primary_key[0])
    return _decode(values)


def _evidence(conn: Connection, s: Spike) -> dict[str, Any]:
    """What an alert says about its bucket: counts, score, and the posts, clusters and terms that drove it."""
    col = _COLUMNS[s.dimension]
    end = s.bucket_start + STEP[s.granularity]
    rows = conn.execute(
        select(posts.c.id, posts.c.cluster_id, posts.c.title, posts.c.text)
        .where(col == s.value, posts.c.created_at >= s.bucket_start, posts.c.created_at < end)
        .order_by(posts.c.id)
    ).all()
    background = conn.execute(
        select(posts.c.title, posts.c.text)
        .where(
            col == s.value,
            posts.c.created_at >= s.bucket_start - timedelta(days=28),
            posts.c.created_at < s.bucket_start,
        )
        .limit(2000)
    ).all()
    clusters = Counter(r.cluster_id for r in rows if r.cluster_id is not None)
    return {
        "observed": s.observed,
        "expected": round(s.expected, 3),
        "score": round(s.score, 3),
        "terms": json.dumps(
            top_terms([f"{r.title or ''} {r.text}" for r in rows], [f"{r.title or ''} {r.text}" for r in background])
        ),
        "post_ids": json.dumps([r.id for r in rows][:MAX_POSTS]),
        "cluster_ids": json.dumps([c for c, n in clusters.most_common(20) if n >= 2]),  # repeated stories
    }


def top_terms(texts: Sequence[str], background: Sequence[str], limit: int = 8) -> list[str]:
    """Words over-represented in ``texts`` against ``background`` (smoothed log-odds, document frequency)."""

    def df(docs: Sequence[str]) -> Counter[str]:
        c: Counter[str] = Counter()
        for d in docs:
            words = set(_WORD.findall(d.lower())) - STOPWORDS - PLACEHOLDERS
            c.update(words)
        return c

    fg, bg = df(texts), df(background)
    nf, nb = max(len(texts), 1), max(len(background), 1)
    scored = [
        (math.log((n + 0.5) / (nf + 1)) - math.log((bg[w] + 0.5) / (nb + 1)), n, w)
        for w, n in fg.items()
        if n >= 2 or len(texts) < 4
    ]
    scored.sort(key=lambda x: (-x[0], -x[1], x[2]))
    return [w for s, _, w in scored[:limit] if s > 0]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("terms", "post_ids", "cluster_ids"):
        out[key] = json.loads(out[key]) if isinstance(out.get(key), str) else (out.get(key) or [])
    return out


def list_alerts(conn: Connection, *, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    stmt = select(alerts).order_by(alerts.c.bucket_start.desc(), alerts.c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(alerts.c.status == status)
    return [_decode(dict(r)) for r in conn.execute(stmt).mappings()]


def get_alert(conn: Connection, alert_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
    return _decode(dict(row)) if row else None


STATUSES = ("open", "acknowledged", "closed")


def acknowledge(conn: Connection, alert_id: int, *, actor: str, status: str = "acknowledged") -> bool:
    """Set an alert's status (acknowledged or closed); records an audit event. False when there is no such alert."""
    from openear import audit

    if status not in STATUSES:
        raise ValueError(f"status: {status!r}")
    done = conn.execute(update(alerts).where(alerts.c.id == alert_id).values(status=status)).rowcount
    if done:
        audit.record(conn, actor, f"alert.{status}", f"alert:{alert_id}")
    return bool(done)


def describe(a: dict[str, Any]) -> str:
    """``Spike in App issue: 19 posts on 2026-11-24 (expected 2.1)``."""
    when = a["bucket_start"].strftime("%Y-%m-%d" if a["granularity"] == "day" else "%Y-%m-%d %H:00 UTC")
    unit = "on" if a["granularity"] == "day" else "in the hour of"
    from openear.labels import nice

    what = nice(a["value"]) if a["dimension"] == "category" else f"{a['dimension']} {a['value']}"
    return f"Spike in {what}: {a['observed']} posts {unit} {when} (expected {a['expected']:.1f})"


def alert_message(a: dict[str, Any]) -> Any:
    from openear.channels import Message

    terms = ", ".join(a["terms"]) or "–"
    return Message(
        subject=f"[openear] {describe(a)}",
        text=f"{describe(a)}.\nTop terms: {terms}.\nPosts: {len(a['post_ids'])}; clusters: {len(a['cluster_ids'])}.\n",
        ref=f"alert:{a['id']}",
        fields={
            "series": f"{a['dimension']}={a['value']}",
            "observed": str(a["observed"]),
            "expected": f"{a['expected']:.1f}",
            "score": f"{a['score']:.1f}σ",
        },
        link="/alerts",
    )
