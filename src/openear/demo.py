"""``openear demo``: a fresh workspace, the bundled synthetic sample through the whole pipeline, a report.

The sample (``data/demo/posts.jsonl``, made by ``scripts/make_demo_data.py``) is synthetic. Its dates are moved
forward so that its newest post is from today, so the report and dashboard show a current picture.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from openear.errors import ConfigError
from openear.models import RawItem, RunStats
from openear.settings import SourceSpec
from openear.workspace import InitResult, init_workspace

MARKER = ".openear-demo"

# The demo's declared sources: every item of the sample names one in its "source" field.
DEMO_SOURCES = (
    SourceSpec("reddit-flexdrivers", connector="reddit", visibility="public", kind="social", country="US"),
    SourceSpec("driver-forum", connector="files", visibility="consented", kind="social", country="GB"),
    SourceSpec("foro-repartidores", connector="files", visibility="consented", kind="social", country="ES"),
    SourceSpec("news-en", connector="rss", visibility="public", kind="news"),
    SourceSpec("noticias-es", connector="rss", visibility="public", kind="news", country="ES"),
)


@dataclass
class DemoResult:
    init: InitResult
    stats: dict[str, RunStats] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    triage: object | None = None  # openear.triage.SyncResult of the demo's triage pass


def sample_path() -> Path:
    return Path(str(resources.files("openear.data").joinpath("demo/posts.jsonl")))


def prepare_home(home: Path) -> None:
    """Start from an empty folder: remove an earlier demo workspace, refuse to touch anything else."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise ConfigError(f"{home} exists and is not a demo workspace; pass another --home")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("created by 'openear demo'; removed and recreated by the next demo run\n")


def _shift(now: datetime) -> timedelta:
    newest = None
    with sample_path().open(encoding="utf-8") as fh:
        for line in fh:
            created = datetime.fromisoformat(json.loads(line)["created_at"].replace("Z", "+00:00"))
            newest = created if newest is None or created > newest else newest
    if newest is None:
        return timedelta(0)
    return timedelta(days=(now - newest).days)


def _items_for(source: str, shift: timedelta) -> Callable[[Iterator[object]], Iterator[object]]:
    def select(items: Iterator[object]) -> Iterator[object]:
        for item in items:
            if isinstance(item, RawItem):
                if item.payload.get("source") != source:
                    continue
                payload = dict(item.payload)
                created = datetime.fromisoformat(str(payload["created_at"]).replace("Z", "+00:00"))
                payload["created_at"] = (created + shift).isoformat()
                item = replace(item, payload=payload)
            yield item

    return select


def run_demo(home: Path, *, progress: Callable[[str, int], None] | None = None) -> DemoResult:
    """Build the demo workspace at ``home`` and write its reports; does not serve."""
    from openear import reports
    from openear.connectors import files
    from openear.pipeline import Pipeline
    from openear.store import Store
    from openear.store.queries import Period

    prepare_home(home)
    init = init_workspace(home, organisation="openear demo (synthetic data)")
    settings = init.settings
    result = DemoResult(init)
    store = Store(settings.database_url)
    try:
        pipe = Pipeline.for_settings(settings, store)
        shift = _shift(datetime.now(UTC))
        path = sample_path()
        for spec in DEMO_SOURCES:
            items = _items_for(spec.name, shift)(files.read_items(path, "jsonl", spec.name))
            def normalise(raw: RawItem, spec: SourceSpec = spec) -> object:
                return files.normalise(raw, "jsonl", spec)

            def tick(n: int, name: str = spec.name) -> None:
                if progress:
                    progress(name, n)

            _, stats = pipe.run(spec, items, normalise, kind="demo", progress=tick)  # type: ignore[arg-type]
            result.stats[spec.name] = stats
        from openear.topics import emerging_topics

        emerging_topics(store)  # as the daily job would: reports and the overview show what it found, or that it looked
        out = home / "reports"
        out.mkdir(exist_ok=True)
        with store.connect() as conn:
            report = reports.build_report(conn, Period.parse_since("60d"), settings_like=settings)
        for fmt, name in (("html", "demo-report.html"), ("markdown", "demo-report.md"), ("csv", "demo-report.csv")):
            reports.write_report(report, fmt, out / name)
            result.reports.append(out / name)
        result.reports += _triage_step(settings, store, result)
    finally:
        store.close()
    return result


def _triage_step(settings: object, store: object, result: DemoResult) -> list[Path]:
    """Route, open cases for the main complaint clusters, detect spikes, escalate; archive a management PDF.

    Channels are not configured in the demo: notifications are kept in an outbox and recorded as deliveries.
    """
    from openear import scheduler, triage
    from openear.channels import Outbox
    from openear.store.queries import Period

    cfg = triage.load_triage(settings)
    now = datetime.now(UTC)
    result.triage = triage.run(store, cfg, now=now, notifier=Outbox())
    item = scheduler.write_archived(
        store, settings, cfg, kind="adhoc", team=cfg.management_team, period=Period.parse_since("14d", now), now=now
    )
    return list(item.paths.values())
