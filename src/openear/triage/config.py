"""Typed triage settings from ``openear.toml``: ``[[teams]]``, ``[[routing]]``, ``[[case_rules]]``,
``[escalation]``, ``[alerts]`` and ``[channels]``. Read from :attr:`openear.settings.Settings.raw`.

Without ``[[teams]]``, every owner named in the taxonomy is a team and each category routes to its owner. A rule
that would group posts by author (a key, a ``group_by`` or a query naming the author's pseudonym) is refused with
:class:`~openear.errors.ConfigError`: cases link posts and clusters, never people (guardrail 5).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openear.errors import ConfigError

__all__ = [
    "PRIORITIES",
    "SENSITIVITY",
    "AlertConfig",
    "CaseRule",
    "ChannelConfig",
    "EscalationConfig",
    "RoutingRule",
    "SmtpConfig",
    "Team",
    "TriageConfig",
    "WebhookConfig",
    "load_triage",
    "parse_triage",
    "refuse_author_grouping",
]

PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
DEFAULT_SLA_HOURS = {"urgent": 4.0, "high": 24.0, "normal": 72.0, "low": 168.0}
# sensitivity -> (sigmas above the expected count, least excess posts, least ratio observed / expected)
SENSITIVITY: dict[str, tuple[float, int, float]] = {
    "low": (3.5, 5, 1.5),
    "medium": (3.0, 4, 1.3),
    "high": (2.6, 3, 1.2),
}
DIMENSIONS = ("category", "source", "lang")
_AUTHORISH = re.compile(r"author|pseudonym", re.IGNORECASE)


def refuse_author_grouping(where: str, value: Any) -> None:
    """Raise ``ConfigError`` when a rule key or value tries to select or group by author."""
    if isinstance(value, dict):
        for k, v in value.items():
            if _AUTHORISH.search(str(k)):
                raise ConfigError(f"{where}: {k}: refused: cases and alerts never group by author (guardrail 5)")
            refuse_author_grouping(f"{where}.{k}", v)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            refuse_author_grouping(f"{where}[{i}]", v)
    elif isinstance(value, str) and _AUTHORISH.search(value) and where.rsplit(".", 1)[-1] in ("group_by", "query"):
        raise ConfigError(f"{where}: {value!r}: refused: cases and alerts never group by author (guardrail 5)")


@dataclass(frozen=True)
class WebhookConfig:
    """A Slack-compatible webhook: JSON POST signed with HMAC-SHA256 of ``timestamp.body``."""

    url: str
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class Team:
    """Who owns categories and hears about their cases, alerts and reports."""

    name: str
    categories: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    webhook: WebhookConfig | None = None
    management: bool = False


@dataclass(frozen=True)
class RoutingRule:
    """Posts of ``category`` (and/or matching ``query``, in openear's query language) go to ``team``."""

    team: str
    category: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class CaseRule:
    """Opens a case for each near-duplicate cluster that reaches ``min_cluster_size`` posts."""

    name: str
    min_cluster_size: int = 8
    sentiment: str | None = "negative"  # the cluster's majority sentiment; None: any
    categories: tuple[str, ...] = ()  # empty: every category but media coverage and other
    priority: str = "normal"
    high_at: int = 20  # a cluster this large opens at high priority


@dataclass(frozen=True)
class EscalationConfig:
    """When a case goes to the management group."""

    priorities: tuple[str, ...] = ("urgent",)
    volume_window_hours: float = 168.0
    volume_growth: float = 2.0  # linked posts in the last window >= growth x the window before
    volume_min_posts: int = 10
    sla_hours: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SLA_HOURS))


@dataclass(frozen=True)
class AlertConfig:
    """Spike detection: which series, how sensitive, how long to stay quiet after an alert."""

    sensitivity: str = "medium"
    cooldown_hours: float = 24.0
    dimensions: tuple[str, ...] = DIMENSIONS
    granularities: tuple[str, ...] = ("day", "hour")
    history_days: int = 56  # of daily history (hourly series use at most 28 days)
    lookback_days: int = 7  # each run looks at the complete buckets of the last days
    open_cases: bool = True  # a category spike opens (or joins) a case for its owner team
    case_priority: str = "high"

    @property
    def thresholds(self) -> tuple[float, int, float]:
        return SENSITIVITY[self.sensitivity]


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    sender: str = "openear@localhost"
    starttls: bool = False
    username: str | None = None
    password: str = field(default="", repr=False)
    timeout: float = 10.0


@dataclass(frozen=True)
class ChannelConfig:
    smtp: SmtpConfig | None = None
    retries: int = 3  # attempts after the first
    backoff_seconds: float = 1.0  # doubled each retry
    timeout: float = 10.0


@dataclass(frozen=True)
class TriageConfig:
    teams: tuple[Team, ...]
    routing: tuple[RoutingRule, ...]
    case_rules: tuple[CaseRule, ...]
    escalation: EscalationConfig
    alerts: AlertConfig
    channels: ChannelConfig
    management: str = "Management"

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    @property
    def management_team(self) -> Team:
        return self.team(self.management) or Team(self.management, management=True)

    def owner_of(self, category: str | None) -> str | None:
        """The team a category routes to by the category rules alone (queries need a post)."""
        for rule in self.routing:
            if rule.category == category and rule.query is None:
                return rule.team
        for t in self.teams:
            if category in t.categories:
                return t.name
        return None


def _str_list(where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a string or a list of strings")
    return tuple(value)


def _number(where: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{where}: must be a number >= {minimum:g}")
    return float(value)


def _secret(where: str, raw: dict[str, Any], key: str) -> str:
    """A secret from ``KEY_env`` (an environment variable's name; preferred) or ``KEY`` itself."""
    env = raw.get(f"{key}_env")
    if env:
        value = os.environ.get(str(env))
        if value is None:
            raise ConfigError(f"{where}: {key}_env: environment variable {env} is not set")
        return value
    return str(raw.get(key, ""))


def _taxonomy_owners(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        from importlib import resources

        text = resources.files("openear.data").joinpath("taxonomy.toml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return {k: str(v["owner"]) for k, v in data.get("categories", {}).items() if isinstance(v, dict) and v.get("owner")}


def parse_triage(
    raw: dict[str, Any], *, taxonomy_path: Path | None = None, where: str = "openear.toml"
) -> TriageConfig:
    """Parse the triage tables of a parsed ``openear.toml``; raises ``ConfigError`` naming the bad key."""
    for key in ("teams", "routing", "case_rules", "escalation", "alerts"):
        if key in raw:
            refuse_author_grouping(f"{where}: {key}", raw[key])
    esc_raw = raw.get("escalation", {})
    if not isinstance(esc_raw, dict):
        raise ConfigError(f"{where}: escalation: must be a table")
    management = str(esc_raw.get("management", "Management"))

    teams: list[Team] = []
    if "teams" in raw:
        if not isinstance(raw["teams"], list):
            raise ConfigError(f"{where}: teams: must be an array of tables ([[teams]])")
        for i, t in enumerate(raw["teams"]):
            w = f"{where}: teams[{i}]"
            if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"].strip():
                raise ConfigError(f"{w}: name: required")
            hook = None
            if t.get("webhook"):
                url = str(t["webhook"])
                if not url.startswith(("http://", "https://")):
                    raise ConfigError(f"{w}: webhook: must be an http(s) URL")
                hook = WebhookConfig(url, _secret(w, t, "webhook_secret"))
            teams.append(
                Team(
                    name=t["name"],
                    categories=_str_list(f"{w}: categories", t.get("categories")),
                    email=_str_list(f"{w}: email", t.get("email")),
                    webhook=hook,
                    management=bool(t.get("management", False)) or t["name"] == management,
                )
            )
        names = [t.name for t in teams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{where}: teams: duplicate name {dupes[0]!r}")
    owners = _taxonomy_owners(taxonomy_path)
    if not teams:  # the taxonomy's owners are the teams
        by_team: dict[str, list[str]] = {}
        for cat, owner in owners.items():
            by_team.setdefault(owner, []).append(cat)
        teams = [Team(name, tuple(cats)) for name, cats in by_team.items()]
    if not any(t.name == management for t in teams):
        teams.append(Team(management, management=True))

    known = {t.name for t in teams}
    routing: list[RoutingRule] = []
    for i, r in enumerate(raw.get("routing", []) or []):
        w = f"{where}: routing[{i}]"
        if not isinstance(r, dict) or not r.get("team"):
            raise ConfigError(f"{w}: team: required")
        if r["team"] not in known:
            raise ConfigError(f"{w}: team: {r['team']!r} is not a declared team")
        if not r.get("category") and not r.get("query"):
            raise ConfigError(f"{w}: needs a category or a query")
        if r.get("query"):
            try:
                from openear.query import parse

                parse(str(r["query"]))
            except ImportError:  # pragma: no cover - the query language ships with openear
                pass
            except Exception as exc:
                raise ConfigError(f"{w}: query: {exc}") from None
        routing.append(RoutingRule(str(r["team"]), r.get("category"), r.get("query")))
    for t in teams:  # a team's own categories, then the taxonomy's owners, route after the explicit rules
        routing += [RoutingRule(t.name, c) for c in t.categories]
    routing += [RoutingRule(o, c) for c, o in owners.items() if o in known]

    rules: list[CaseRule] = []
    rules_raw = raw.get("case_rules")
    for i, r in enumerate(rules_raw if rules_raw is not None else [{"name": "repeated complaints"}]):
        w = f"{where}: case_rules[{i}]"
        if not isinstance(r, dict) or not r.get("name"):
            raise ConfigError(f"{w}: name: required")
        group_by = r.get("group_by", "cluster")
        if group_by != "cluster":
            raise ConfigError(f"{w}: group_by: only 'cluster' is allowed, not {group_by!r}")
        prio = r.get("priority", "normal")
        if prio not in PRIORITIES:
            raise ConfigError(f"{w}: priority: must be one of {', '.join(PRIORITIES)}")
        rules.append(
            CaseRule(
                name=str(r["name"]),
                min_cluster_size=int(_number(f"{w}: min_cluster_size", r.get("min_cluster_size", 8), minimum=2)),
                sentiment=r.get("sentiment", "negative") or None,
                categories=_str_list(f"{w}: categories", r.get("categories")),
                priority=prio,
                high_at=int(_number(f"{w}: high_at", r.get("high_at", 20), minimum=2)),
            )
        )

    sla = dict(DEFAULT_SLA_HOURS)
    for k, v in (esc_raw.get("sla_hours") or {}).items():
        if k not in PRIORITIES:
            raise ConfigError(f"{where}: escalation.sla_hours: {k}: not a priority ({', '.join(PRIORITIES)})")
        sla[k] = _number(f"{where}: escalation.sla_hours.{k}", v, minimum=0.01)
    prios = _str_list(f"{where}: escalation.priorities", esc_raw.get("priorities", ["urgent"]))
    for p in prios:
        if p not in PRIORITIES:
            raise ConfigError(f"{where}: escalation.priorities: {p!r} is not a priority")
    escalation = EscalationConfig(
        priorities=prios,
        volume_window_hours=_number(
            f"{where}: escalation.volume_window_hours", esc_raw.get("volume_window_hours", 168), minimum=1
        ),
        volume_growth=_number(f"{where}: escalation.volume_growth", esc_raw.get("volume_growth", 2.0), minimum=1),
        volume_min_posts=int(
            _number(f"{where}: escalation.volume_min_posts", esc_raw.get("volume_min_posts", 10), minimum=1)
        ),
        sla_hours=sla,
    )

    a = raw.get("alerts", {})
    if not isinstance(a, dict):
        raise ConfigError(f"{where}: alerts: must be a table")
    sensitivity = a.get("sensitivity", "medium")
    if sensitivity not in SENSITIVITY:
        raise ConfigError(f"{where}: alerts.sensitivity: must be one of {', '.join(SENSITIVITY)}")
    dims = _str_list(f"{where}: alerts.dimensions", a.get("dimensions", list(DIMENSIONS)))
    for d in dims:
        if d not in DIMENSIONS:
            raise ConfigError(f"{where}: alerts.dimensions: {d!r}: must be one of {', '.join(DIMENSIONS)}")
    grans = _str_list(f"{where}: alerts.granularities", a.get("granularities", ["day", "hour"]))
    for g in grans:
        if g not in ("day", "hour"):
            raise ConfigError(f"{where}: alerts.granularities: {g!r}: must be 'day' or 'hour'")
    alerts = AlertConfig(
        sensitivity=sensitivity,
        cooldown_hours=_number(f"{where}: alerts.cooldown_hours", a.get("cooldown_hours", 24)),
        dimensions=dims,
        granularities=grans,
        history_days=int(_number(f"{where}: alerts.history_days", a.get("history_days", 56), minimum=14)),
        lookback_days=int(_number(f"{where}: alerts.lookback_days", a.get("lookback_days", 7), minimum=1)),
        open_cases=bool(a.get("open_cases", True)),
        case_priority=str(a.get("case_priority", "high")),
    )

    c = raw.get("channels", {})
    if not isinstance(c, dict):
        raise ConfigError(f"{where}: channels: must be a table")
    smtp = None
    if isinstance(c.get("smtp"), dict):
        s = c["smtp"]
        smtp = SmtpConfig(
            host=str(s.get("host", "localhost")),
            port=int(_number(f"{where}: channels.smtp.port", s.get("port", 25), minimum=1)),
            sender=str(s.get("sender", "openear@localhost")),
            starttls=bool(s.get("starttls", False)),
            username=s.get("username"),
            password=_secret(f"{where}: channels.smtp", s, "password"),
            timeout=_number(f"{where}: channels.smtp.timeout", s.get("timeout", 10), minimum=0.1),
        )
    channels = ChannelConfig(
        smtp=smtp,
        retries=int(_number(f"{where}: channels.retries", c.get("retries", 3))),
        backoff_seconds=_number(f"{where}: channels.backoff_seconds", c.get("backoff_seconds", 1.0)),
        timeout=_number(f"{where}: channels.timeout", c.get("timeout", 10), minimum=0.1),
    )
    return TriageConfig(tuple(teams), tuple(routing), tuple(rules), escalation, alerts, channels, management)


def load_triage(settings: Any) -> TriageConfig:
    """The triage config of a :class:`openear.settings.Settings`."""
    return parse_triage(settings.raw, taxonomy_path=settings.taxonomy_path, where=str(settings.config_path))
