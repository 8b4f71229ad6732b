#!/usr/bin/env python3
"""Spike detection: openear's seasonal detector against the common mean + 3σ peak detector.

    .venv/bin/python benchmarks/alerts.py [--series 300] [--weeks 26] [--seed 7] [--history-days 56] [--json F]

1. Generates labelled synthetic daily series: a base level (2 to 60 posts a day), a weekly rhythm (weekends at
   25% to 100% of weekdays), a linear trend (-40% to +80% over the series), over-dispersed noise (gamma-Poisson,
   like real complaint counts) and injected spikes (about one every 8 weeks per series, 1 to 3 days, adding 1.5 to
   4 times the expected count and at least 6 posts).
2. Runs each detector online, day by day, from day 28, with what it would know then:
   - **seasonal** (``openear.alerts.seasonal_baseline`` + ``is_spike``, up to 56 days of history, a 24 h cooldown),
     at each sensitivity preset;
   - **mean + 3σ**: Huginn's PeakDetectorAgent (app/models/agents/peak_detector_agent.rb) on one event a day,
     with its defaults: ``std_multiple`` 3 (population standard deviation), ``min_peak_spacing_in_days`` 2 (a peak
     only when the last one is more than 2 days older), ``min_events`` 4, and ``window_duration_in_days`` 14 (its
     default) or 28. It keeps the events newer than the newest minus the window, so the newest is compared with
     the 13 (or 27) days before it.
3. Scores: **recall** (share of injected spikes with an alert on one of their days), **delay** (days from a
   spike's first day to its first alert; 0 = the same day) and **false alarms per series-week** (alerts on days
   without a spike). A 95% bootstrap interval (resampling series) of the differences in recall and in false
   alarms per series-week says whether a difference is more than the luck of the draw.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from openear.alerts import is_spike, mean_sigma_peak, seasonal_baseline  # noqa: E402
from openear.triage.config import SENSITIVITY, AlertConfig  # noqa: E402

HISTORY = 28  # both detectors start on day 28


@dataclass
class Series:
    counts: list[int]
    spikes: list[tuple[int, int]]  # (first day, last day), inclusive

    def spike_day(self) -> set[int]:
        return {d for a, b in self.spikes for d in range(a, b + 1)}


def _poisson(rnd: random.Random, lam: float) -> int:
    if lam > 50:  # normal approximation
        return max(0, round(rnd.gauss(lam, math.sqrt(lam))))
    x, p = 0, math.exp(-lam)
    s, u = p, rnd.random()
    while u > s:
        x += 1
        p *= lam / x
        s += p
    return x


def make_series(rnd: random.Random, days: int) -> Series:
    base = math.exp(rnd.uniform(math.log(2), math.log(60)))
    weekend = rnd.uniform(0.25, 1.0)
    trend = rnd.uniform(-0.4, 0.8) / days
    shape = rnd.uniform(4, 20)  # gamma shape: smaller is more over-dispersed
    expected = [base * (1 + trend * d) * (weekend if d % 7 in (5, 6) else 1.0) for d in range(days)]
    spikes: list[tuple[int, int]] = []
    d = HISTORY + rnd.randint(3, 40)
    while d < days - 3:
        length = rnd.randint(1, 3)
        spikes.append((d, d + length - 1))
        d += length + rnd.randint(30, 80)
    extra = [0.0] * days
    for a, b in spikes:
        for k in range(a, b + 1):
            extra[k] = max(rnd.uniform(1.5, 4.0) * expected[k], 6.0)
    counts = [_poisson(rnd, rnd.gammavariate(shape, expected[i] / shape) + extra[i]) for i in range(days)]
    return Series(counts, spikes)


@dataclass
class Score:
    name: str
    detected: int = 0
    spikes: int = 0
    delays: list[int] = field(default_factory=list)
    false_alarms: int = 0
    series_days: int = 0

    def as_dict(self) -> dict[str, float | str]:
        weeks = self.series_days / 7
        return {
            "detector": self.name,
            "recall": round(self.detected / self.spikes, 3) if self.spikes else 0.0,
            "mean_delay_days": round(sum(self.delays) / len(self.delays), 2) if self.delays else float("nan"),
            "false_alarms_per_series_week": round(self.false_alarms / weeks, 4) if weeks else 0.0,
            "false_alarms": self.false_alarms,
            "spikes": self.spikes,
        }


def score(name: str, series: list[Series], alert_days: list[list[int]]) -> Score:
    sc = Score(name)
    for s, alerts in zip(series, alert_days, strict=True):
        hot = s.spike_day()
        sc.series_days += len(s.counts) - HISTORY
        sc.false_alarms += sum(1 for d in alerts if d not in hot)
        for a, b in s.spikes:
            sc.spikes += 1
            hits = [d for d in alerts if a <= d <= b]
            if hits:
                sc.detected += 1
                sc.delays.append(min(hits) - a)
    return sc


def run_seasonal(s: Series, sensitivity: str, history_days: int, cooldown_days: int = 1) -> list[int]:
    """openear's detector, online; the day after an alert is quiet (the 24 h cooldown)."""
    k, min_excess, min_ratio = SENSITIVITY[sensitivity]
    out: list[int] = []
    for d in range(HISTORY, len(s.counts)):
        if out and d - out[-1] <= cooldown_days:
            continue
        lo = max(0, d - history_days)
        base = seasonal_baseline(s.counts[lo:d], 7)
        if is_spike(s.counts[d], base, k, min_excess, min_ratio):
            out.append(d)
    return out


def run_mean_sigma(s: Series, window: int, spacing: int = 2, min_events: int = 4) -> list[int]:
    """Huginn's PeakDetectorAgent on one event a day: it keeps the events newer than ``window`` days before the
    newest (so ``window - 1`` earlier days), compares the newest with their mean + 3 population standard
    deviations, needs more than ``min_events`` events, and ignores a peak unless the last one is more than
    ``spacing`` days older."""
    out: list[int] = []
    for d in range(HISTORY, len(s.counts)):
        if out and not out[-1] < d - spacing:
            continue
        history = s.counts[max(0, d - window + 1) : d]
        if len(history) + 1 <= min_events:
            continue
        if mean_sigma_peak(history, s.counts[d], 3.0):
            out.append(d)
    return out


def per_series(series: list[Series], alert_days: list[list[int]]) -> np.ndarray:
    """(detected, spikes, false alarms, weeks) per series, for the bootstrap."""
    rows = []
    for s, alerts in zip(series, alert_days, strict=True):
        hot = s.spike_day()
        found = sum(1 for a, b in s.spikes if any(a <= d <= b for d in alerts))
        rows.append((found, len(s.spikes), sum(1 for d in alerts if d not in hot), (len(s.counts) - HISTORY) / 7))
    return np.array(rows, dtype=float)


def bootstrap(a: np.ndarray, b: np.ndarray, rnd: np.random.Generator, n: int = 2000) -> dict[str, list[float]]:
    """95% intervals (resampling series) of the differences a - b in recall and in false alarms per series-week."""
    idx = rnd.integers(0, len(a), size=(n, len(a)))
    sa, sb = a[idx].sum(1), b[idx].sum(1)
    recall = sa[:, 0] / sa[:, 1] - sb[:, 0] / sb[:, 1]
    fa = sa[:, 2] / sa[:, 3] - sb[:, 2] / sb[:, 3]
    return {
        "recall_diff_ci": [round(float(np.percentile(recall, q)), 4) for q in (2.5, 97.5)],
        "false_alarm_diff_ci": [round(float(np.percentile(fa, q)), 4) for q in (2.5, 97.5)],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--weeks", type=int, default=26)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--history-days", type=int, default=AlertConfig().history_days)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    series = [make_series(rnd, args.weeks * 7) for _ in range(args.series)]
    rows, tallies = [], {}
    started = time.perf_counter()
    for sens in ("low", "medium", "high"):
        name = f"seasonal ({sens})"
        found = [run_seasonal(s, sens, args.history_days) for s in series]
        rows.append(score(name, series, found).as_dict())
        tallies[name] = per_series(series, found)
    for window in (14, 28):
        name = f"mean + 3σ ({window} d)"
        found = [run_mean_sigma(s, window) for s in series]
        rows.append(score(name, series, found).as_dict())
        tallies[name] = per_series(series, found)
    elapsed = time.perf_counter() - started
    boot = np.random.default_rng(args.seed)
    cis = {
        f"{a} - {b}": bootstrap(tallies[a], tallies[b], boot)
        for a in ("seasonal (medium)", "seasonal (low)")
        for b in ("mean + 3σ (14 d)", "mean + 3σ (28 d)")
    }
    print(
        f"{args.series} series x {args.weeks} weeks, seed {args.seed}, {sum(len(s.spikes) for s in series)} "
        f"injected spikes; history {args.history_days} d; Python {platform.python_version()}; {elapsed:.1f} s"
    )
    print(f"{'detector':<22} {'recall':>7} {'delay (d)':>10} {'false alarms / series-week':>27} {'false alarms':>13}")
    for r in rows:
        print(
            f"{r['detector']:<22} {r['recall']:>7.3f} {r['mean_delay_days']:>10.2f} "
            f"{r['false_alarms_per_series_week']:>27.4f} {r['false_alarms']:>13}"
        )
    print("95% bootstrap intervals over series (2000 resamples):")
    for pair, ci in cis.items():
        print(f"  {pair}: recall {ci['recall_diff_ci']}, false alarms / series-week {ci['false_alarm_diff_ci']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                _strict({"rows": rows, "bootstrap": cis, "series": args.series, "weeks": args.weeks,
                         "seed": args.seed}),
                indent=2,
                ensure_ascii=False,
                allow_nan=False,
            )
        )
    return 0


def _strict(value: Any) -> Any:
    """``value`` with NaN and infinities (no spike found: no mean delay) as null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
