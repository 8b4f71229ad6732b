"""Report charts as inline SVG (matplotlib, no pyplot). Deterministic: the same figures give the same bytes.

Each function returns an ``<svg>`` string ready to embed in HTML (text stays text: ``svg.fonttype = 'none'``),
or ``None`` when there is nothing to draw. Labels are plain text (mathtext off); matplotlib escapes them for XML.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from openear.labels import CATEGORY_LABELS, GUARD_REASONS, LANGUAGE_NAMES, language_name, nice, reason_label

__all__ = [
    "CATEGORY_COLOURS",
    "CATEGORY_LABELS",
    "GUARD_REASONS",
    "LANGUAGE_NAMES",
    "SENTIMENT_COLOURS",
    "category_colour",
    "guard_chart",
    "language_name",
    "nice",
    "reason_label",
    "split_chart",
    "volume_chart",
]

CATEGORY_COLOURS: dict[str, str] = {
    "app_issue": "#4e79a7",
    "pay_tips": "#f28e2b",
    "scheduling_offers": "#edc948",
    "delivery_operations": "#76b7b2",
    "account_status": "#e15759",
    "support": "#b07aa1",
    "safety": "#ff9da7",
    "working_conditions": "#9c755f",
    "media_coverage": "#59a14f",
    "other": "#bab0ac",
}
_EXTRA = ("#86bcb6", "#d4a6c8", "#8cd17d", "#f1ce63", "#a0cbe8", "#ffbe7d", "#d37295", "#79706e")
SENTIMENT_COLOURS: dict[str, str] = {
    "negative": "#d1495b",
    "neutral": "#9aa5b1",
    "positive": "#3c9d5d",
    "unknown": "#d9dde2",
}
GUARD_COLOURS: dict[str, str] = {"withheld": "#6c5ce7", "rejected": "#d1495b", "scrubbed": "#9aa5b1"}
BAR_DAYS = 92
INK = "#1f2933"
MUTED = "#616e7c"
GRID = "#e4e7eb"

_RC: Any = {  # rcParams keys are Literal-typed in matplotlib's stubs
    "svg.fonttype": "none",
    "svg.hashsalt": "openear",
    "svg.id": None,
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": MUTED,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "text.color": INK,
    "path.simplify": False,
}
_SVG_HEAD = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_SVG_ID = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')
_SVG_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)


def category_colour(category: str, order: Sequence[str] = ()) -> str:
    """A stable colour for a category: the preset's, else one from a spare palette by its place in ``order``."""
    if category in CATEGORY_COLOURS:
        return CATEGORY_COLOURS[category]
    extras = [c for c in order if c not in CATEGORY_COLOURS]
    i = extras.index(category) if category in extras else sum(map(ord, category))
    return _EXTRA[i % len(_EXTRA)]


def _svg(fig: Figure, title: str) -> str:
    """The figure as an inline ``<svg>`` (no XML prolog or DOCTYPE), with an accessible title."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Title": title}, bbox_inches="tight")
    svg = _SVG_METADATA.sub("", _SVG_HEAD.sub("", buf.getvalue(), count=1), count=1)
    prefix = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "chart"  # unique ids within one page
    svg = _SVG_ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    return svg.replace("<svg ", '<svg role="img" class="chart" ', 1)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)  # no pyplot: no global figure state, no GUI backend
    fig.patch.set_alpha(0)
    return fig


_LOCK = threading.Lock()  # rc_context changes process-wide settings; the web app may render from threads


def _with_rc(fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK, matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_with_rc
def volume_chart(
    days: Sequence[str], series: Mapping[str, Sequence[int]], *, title: str = "Posts per day by category"
) -> str | None:
    """Stacked bars (areas beyond 92 days) of posts per day, one colour per category.

    ``days`` are ``YYYY-MM-DD``; ``series`` maps category to one count per day, in the order to stack.
    """
    if not days or not series or not any(any(v) for v in series.values()):
        return None
    cats = list(series)
    colours = [category_colour(c, cats) for c in cats]
    xs = [float(mdates.date2num(datetime.fromisoformat(d))) for d in days]  # midnight UTC, in days
    fig = _figure(7.2, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    values = [list(series[c]) for c in cats]
    if len(xs) <= BAR_DAYS:  # daily bars read best; areas only for long periods
        bottom = [0] * len(xs)
        for c, v, colour in zip(cats, values, colours, strict=True):
            noon = [x + 0.5 for x in xs]  # each bar spans its own day
            ax.bar(noon, v, bottom=bottom, color=colour, label=nice(c), width=0.8, linewidth=0)
            bottom = [b + n for b, n in zip(bottom, v, strict=True)]
        ax.set_xlim(xs[0], xs[-1] + 1)
    else:
        ax.stackplot(xs, values, labels=[nice(c) for c in cats], colors=colours, linewidth=0.4, edgecolor="white")
        ax.set_xlim(xs[0], xs[-1])
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("posts")
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return _svg(fig, title)


@_with_rc
def split_chart(
    counts: Mapping[str, int],
    *,
    title: str,
    colours: Mapping[str, str] | None = None,
    label: Callable[[str], str] = nice,
) -> str | None:
    """Horizontal bars, largest at the top, each labelled (by ``label``) with its count and share."""
    items = [(k, v) for k, v in counts.items() if v > 0]
    if not items:
        return None
    total = sum(v for _, v in items)
    items.reverse()  # barh draws bottom-up
    keys = [k for k, _ in items]
    vals = [v for _, v in items]
    palette = colours or {}
    bar_colours = [palette.get(k, category_colour(k, keys)) for k in keys]
    fig = _figure(4.2, 0.45 + 0.32 * len(items))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(keys)), vals, color=bar_colours, height=0.62)
    ax.set_yticks(range(len(keys)), [label(k) for k in keys])
    top = max(vals)
    for y, v in enumerate(vals):
        ax.text(v + top * 0.02, y, f"{v}  ({v / total:.0%})", va="center", fontsize=8, color=MUTED)
    ax.set_xlim(0, top * 1.35)
    ax.xaxis.set_visible(False)
    ax.spines["bottom"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    return _svg(fig, title)


@_with_rc
def guard_chart(summary: Mapping[str, Mapping[str, int]], *, title: str = "The guard's counts") -> str | None:
    """Horizontal bars of the guard's counts: withheld, rejected and scrubbed, by reason."""
    rows: list[tuple[str, str, int]] = [
        (action, reason, int(n))
        for action in ("withheld", "rejected", "scrubbed")
        for reason, n in summary.get(action, {}).items()
        if n
    ]
    if not rows:
        return None
    rows.reverse()
    labels = [f"{action}: {reason_label(reason).lower()}" for action, reason, _ in rows]
    vals = [n for _, _, n in rows]
    fig = _figure(4.8, 0.45 + 0.32 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(rows)), vals, color=[GUARD_COLOURS[a] for a, _, _ in rows], height=0.62)
    ax.set_yticks(range(len(rows)), labels)
    top = max(vals)
    for y, v in enumerate(vals):
        ax.text(v + top * 0.02, y, str(v), va="center", fontsize=8, color=MUTED)
    ax.set_xlim(0, top * 1.25)
    ax.xaxis.set_visible(False)
    ax.spines["bottom"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    return _svg(fig, title)


def volume_series(rows: Iterable[tuple[str, str, int]], days: Sequence[str]) -> dict[str, list[int]]:
    """``(day, category, n)`` rows as one count per day per category, largest category first."""
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[int]] = {}
    for day, cat, n in rows:
        if day in index:
            series.setdefault(cat, [0] * len(days))[index[day]] += n
    return dict(sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0])))


@_with_rc
def alerts_chart(
    alerts: Sequence[Mapping[str, Any]], *, title: str = "Spike alerts: posts against expected"
) -> str | None:
    """Horizontal bars, one per alert (newest at the top): the posts observed, with the expected count marked."""
    rows = list(alerts)[:12]
    if not rows:
        return None
    rows.reverse()
    fmt = {"day": "%d %b", "hour": "%d %b %H:00"}
    labels = [
        f"{nice(a['value']) if a['dimension'] == 'category' else a['dimension'] + ' ' + a['value']} · "
        f"{a['bucket_start'].strftime(fmt.get(a['granularity'], '%d %b'))}"
        for a in rows
    ]
    observed = [int(a["observed"]) for a in rows]
    expected = [float(a["expected"]) for a in rows]
    fig = _figure(5.6, 0.7 + 0.3 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(rows)))
    ax.barh(ys, observed, color="#e15759", height=0.6, label="posts")
    ax.scatter(expected, ys, marker="|", s=160, color="#1f2933", linewidths=2, label="expected", zorder=3)
    ax.set_yticks(ys, labels)
    top = max(observed)
    for y, v in enumerate(observed):
        ax.text(v + top * 0.02, y, str(v), va="center", fontsize=8, color=MUTED)
    ax.set_xlim(0, top * 1.2)
    ax.xaxis.set_visible(False)
    ax.spines["bottom"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return _svg(fig, title)
