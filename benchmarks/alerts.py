#!/usr/bin/env python3
"""Spike detection: openear's seasonal detector against the common mean + 3σ peak detector.

    .venv/bin/python benchmarks/alerts.py [--series 300] [--weeks 26] [--seed 7] [--json figures.json]

1. Generates labelled synthetic daily series: a base level (2 to 60 posts a day), a weekly rhythm (weekends at
   25% to 100% of weekdays), a linear trend (-40% to +80% over the series), over-dispersed noise (gamma-Poisson,
   like real complaint counts) and injected spikes (about one every 8 weeks per series, 1 to 3 days, adding 1.5 to
   4 times the expected count and at least 6 posts).
2. Runs each detector online, day by day, from day 28, with what it would know then:
   - **seasonal** (``openear.alerts.seasonal_baseline`` + ``is_spike``, up to 56 days of history, a 24 h cooldown),
     at each sensitivity preset;
   - **mean + 3σ** over a trailing window (14 or 28 days), at least 2 days between peaks: the rule of Huginn's
     PeakDetectorAgent and of most "peak detection" recipes.
3. Scores: **recall** (share of injected spikes with an alert on one of their days), **delay** (days from a
   spike's first day to its first alert; 0 = the same day) and **false alarms per series-week** (alerts on days
   without a spike).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from openear.alerts import is_spike, mean_sigma_peak, seasonal_baseline  # noqa: E402
from openear.triage.config import SENSITIVITY  # noqa: E402

HISTORY = 28  # both detectors start on day 28
SEASONAL_HISTORY = 56  # openear's default history_days (less while the series is younger)


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


def run_seasonal(s: Series, sensitivity: str, cooldown_days: int = 1) -> list[int]:
    k, min_excess, min_ratio = SENSITIVITY[sensitivity]
    out: list[int] = []
    for d in range(HISTORY, len(s.counts)):
        if out and d - out[-1] <= cooldown_days:
            continue
        base = seasonal_baseline(s.counts[max(0, d - SEASONAL_HISTORY) : d], 7)
        if is_spike(s.counts[d], base, k, min_excess, min_ratio):
            out.append(d)
    return out


def run_mean_sigma(s: Series, window: int, spacing: int = 2) -> list[int]:
    out: list[int] = []
    for d in range(HISTORY, len(s.counts)):
        if out and d - out[-1] < spacing:
            continue
        if mean_sigma_peak(s.counts[d - window : d], s.counts[d], 3.0):
            out.append(d)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--weeks", type=int, default=26)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    series = [make_series(rnd, args.weeks * 7) for _ in range(args.series)]
    rows = []
    started = time.perf_counter()
    for sens in ("low", "medium", "high"):
        rows.append(score(f"seasonal ({sens})", series, [run_seasonal(s, sens) for s in series]).as_dict())
    for window in (14, 28):
        rows.append(score(f"mean + 3σ ({window} d)", series, [run_mean_sigma(s, window) for s in series]).as_dict())
    elapsed = time.perf_counter() - started
    print(f"{args.series} series x {args.weeks} weeks, seed {args.seed}, {sum(len(s.spikes) for s in series)} "
          f"injected spikes; Python {platform.python_version()}; {elapsed:.1f} s")
    print(f"{'detector':<22} {'recall':>7} {'delay (d)':>10} {'false alarms / series-week':>27} {'false alarms':>13}")
    for r in rows:
        print(f"{r['detector']:<22} {r['recall']:>7.3f} {r['mean_delay_days']:>10.2f} "
              f"{r['false_alarms_per_series_week']:>27.4f} {r['false_alarms']:>13}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "series": args.series, "weeks": args.weeks,
                                         "seed": args.seed}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
