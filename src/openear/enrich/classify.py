"""Categories and subcategories from the taxonomy preset (``openear/data/taxonomy.toml``): keyword rules.

Rule terms are words, trailing-``*`` stems and multi-word phrases, matched whole-word on case- and accent-folded
text, in English and Spanish alike. Each category compiles to one regular expression whose named groups say which
subcategory matched. News items always carry the news category (``media_coverage``) among their labels, with a
topical category as their primary when one matches (``news_topical_min_hits``), so a news story about safety
counts under Safety; social items never carry the news category, and fall back to ``other`` when nothing matches.
Protected topics are listed in the file for documentation only: the guard (:mod:`openear.guard`) detects them.

An analyst-trained model (:mod:`openear.enrich.trained`, made by ``openear train``) may be attached: its confident
categories are added to the rules' (labels by ``trained@vN``; the rules' keep ``taxonomy-rules@1``), it replaces
the ``other`` fallback when it finds a topic, and its confident best topic becomes the primary. It never assigns a
protected topic, nor the news category to a social item.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from openear.errors import ConfigError
from openear.models import Label
from openear.textmatch import TermMatcher, fold, validate_term

__all__ = ["Categorisation", "Category", "Classifier", "TermMatcher", "fold", "validate_term"]

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Categorisation:
    """The labels for one post: one per category and subcategory, one primary."""

    labels: tuple[Label, ...]
    primary: str | None
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    """One category of the taxonomy, as loaded."""

    key: str
    label: str
    description: str
    owner: str
    subcategories: dict[str, dict[str, list[str]]]  # sub key -> lang -> terms
    terms: dict[str, list[str]]  # category-level terms by language
    protected: bool = False


_QUERY_HIT = 1_000_000  # word position given to a query rule's hit (queries do not report one)


def _score(hits: int) -> float:
    return round(1.0 - 0.5**hits, 3)


class Classifier:
    """Keyword-rule classifier built from a taxonomy TOML file (the shipped preset when no path is given)."""

    name = "taxonomy-rules"
    version = "1"

    def __init__(
        self,
        categories: list[Category],
        *,
        news_category: str,
        fallback_category: str,
        news_topical_min_hits: int = 1,
        source: str = "taxonomy",
        queries: dict[tuple[str, str | None], Any] | None = None,
    ) -> None:
        self.categories = {c.key: c for c in categories}
        # Rules written in the query language, keyed by (category, subcategory or None for the category itself).
        self.queries = {k: q for k, q in (queries or {}).items() if not self.categories[k[0]].protected}
        self.news_category = news_category
        self.fallback_category = fallback_category
        self.news_topical_min_hits = news_topical_min_hits
        self.source = source
        self._targets: list[tuple[str, str | None]] = []  # matcher target -> (category, subcategory or None)
        entries: list[tuple[str, int]] = []
        for cat in categories:
            if cat.protected:
                continue
            lists: list[tuple[str | None, list[str]]] = [(None, [t for ts in cat.terms.values() for t in ts])]
            lists += [(sub, [t for ts in by_lang.values() for t in ts]) for sub, by_lang in cat.subcategories.items()]
            for sub, terms in lists:
                if terms:
                    self._targets.append((cat.key, sub))
                    entries.extend((t, len(self._targets) - 1) for t in terms)
        self._matcher = TermMatcher(entries)
        self.trained: Any = None  # an attached TrainedCategories (openear.enrich.trained), or None

    def attach(self, model: Any) -> None:
        """Combine the rules with an analyst-trained category model from now on (``None``: the rules alone)."""
        self.trained = model

    @property
    def enricher(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def topical(self) -> tuple[str, ...]:
        """Category keys the rules can assign (not protected)."""
        return tuple(k for k, c in self.categories.items() if not c.protected)

    # -- loading ---------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, taxonomy_path: Path | None = None) -> Classifier:
        """Read and validate a taxonomy file; ``None`` = the shipped preset. Raises :class:`ConfigError`."""
        if taxonomy_path is None:
            ref = resources.files("openear") / "data" / "taxonomy.toml"
            text, where = ref.read_text(encoding="utf-8"), "openear/data/taxonomy.toml"
        else:
            where = str(taxonomy_path)
            try:
                text = Path(taxonomy_path).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ConfigError(f"{where}: taxonomy file not found") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where}: cannot read taxonomy file: {exc}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=where)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "taxonomy") -> Classifier:
        """Build from parsed TOML, checking every key; errors read ``FILE: KEY: problem``."""

        def fail(key: str, problem: str) -> ConfigError:
            return ConfigError(f"{source}: {key}: {problem}")

        def table(value: object, key: str) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise fail(key, "must be a table")
            return value

        def string(value: object, key: str, required: bool = True) -> str:
            if value is None and not required:
                return ""
            if not isinstance(value, str) or (required and not value.strip()):
                raise fail(key, "must be a non-empty string")
            return value

        def term_list(value: object, key: str) -> list[str]:
            if not isinstance(value, list):
                raise fail(key, "must be a list of rule terms")
            for i, term in enumerate(value):
                problem = validate_term(term)
                if problem:
                    raise fail(f"{key}[{i}]", problem)
            return list(value)

        unknown = set(data) - {"taxonomy", "rules", "categories"}
        if unknown:
            raise fail(sorted(unknown)[0], "unknown top-level table (expected taxonomy, rules, categories)")
        cats_raw = table(data.get("categories"), "categories")
        if not cats_raw:
            raise fail("categories", "no categories defined")
        languages = table(data.get("taxonomy", {}), "taxonomy").get("languages", ["en", "es"])
        if not isinstance(languages, list) or not all(isinstance(x, str) and x for x in languages):
            raise fail("taxonomy.languages", "must be a list of language codes")
        cat_fields = {"label", "description", "owner", "subcategories", "protected", "query", *languages}
        sub_fields = {"label", "description", "query", *languages}

        def rule_query(value: object, key: str) -> Any:
            """A rule written in the query language (docs/query-language.md), parsed once here."""
            from openear.query import QuerySyntaxError, parse
            from openear.query.ast import field_names

            if value is None:
                return None
            if not isinstance(value, str) or not value.strip():
                raise fail(key, "must be a query (a non-empty string)")
            try:
                query = parse(value)
            except QuerySyntaxError as exc:
                raise fail(key, str(exc)) from None
            if "cluster" in field_names(query.root):
                raise fail(key, "cluster: cannot be used here: a post is categorised before it joins a cluster")
            return query

        queries: dict[tuple[str, str | None], Any] = {}
        categories: list[Category] = []
        for key, raw in cats_raw.items():
            where = f"categories.{key}"
            if not _KEY.match(key):
                raise fail(where, "key must be lower case letters, digits and underscores")
            raw = table(raw, where)
            extra = set(raw) - cat_fields
            if extra:
                raise fail(f"{where}.{sorted(extra)[0]}", f"unknown field (allowed: {', '.join(sorted(cat_fields))})")
            protected = raw.get("protected", False)
            if not isinstance(protected, bool):
                raise fail(f"{where}.protected", "must be true or false")
            subs: dict[str, dict[str, list[str]]] = {}
            for sub_key, sub_raw in table(raw.get("subcategories", {}), f"{where}.subcategories").items():
                sw = f"{where}.subcategories.{sub_key}"
                if not _KEY.match(sub_key):
                    raise fail(sw, "key must be lower case letters, digits and underscores")
                sub_raw = table(sub_raw, sw)
                extra = set(sub_raw) - sub_fields
                if extra:
                    raise fail(f"{sw}.{sorted(extra)[0]}", f"unknown field (allowed: {', '.join(sorted(sub_fields))})")
                string(sub_raw.get("label"), f"{sw}.label")
                if (q := rule_query(sub_raw.get("query"), f"{sw}.query")) is not None:
                    queries[(key, sub_key)] = q
                string(sub_raw.get("description"), f"{sw}.description", required=False)
                subs[sub_key] = {
                    lang: term_list(sub_raw[lang], f"{sw}.{lang}") for lang in languages if lang in sub_raw
                }
            own = {lang: term_list(raw[lang], f"{where}.{lang}") for lang in languages if lang in raw}
            if (q := rule_query(raw.get("query"), f"{where}.query")) is not None:
                queries[(key, None)] = q
            if protected and (subs or own or (key, None) in queries):
                raise fail(where, "protected topics are detected by the guard; remove their rule terms")
            categories.append(
                Category(
                    key=key,
                    label=string(raw.get("label"), f"{where}.label"),
                    description=string(raw.get("description"), f"{where}.description", required=False),
                    owner=string(raw.get("owner"), f"{where}.owner", required=not protected),
                    subcategories=subs,
                    terms=own,
                    protected=protected,
                )
            )
        keys = {c.key for c in categories if not c.protected}
        rules = table(data.get("rules", {}), "rules")
        extra = set(rules) - {"news_category", "fallback_category", "news_topical_min_hits"}
        if extra:
            raise fail(f"rules.{sorted(extra)[0]}", "unknown field")
        news = rules.get("news_category", "media_coverage")
        fallback = rules.get("fallback_category", "other")
        for name, value in (("news_category", news), ("fallback_category", fallback)):
            if value not in keys:
                raise fail(f"rules.{name}", f"{value!r} is not a (non-protected) category of this taxonomy")
        min_hits = rules.get("news_topical_min_hits", 1)
        if not isinstance(min_hits, int) or isinstance(min_hits, bool) or min_hits < 1:
            raise fail("rules.news_topical_min_hits", "must be a positive integer")
        return cls(
            categories,
            news_category=news,
            fallback_category=fallback,
            news_topical_min_hits=min_hits,
            source=source,
            queries=queries,
        )

    # -- classifying -----------------------------------------------------------------------------------------

    def classify(
        self,
        text: str,
        *,
        title: str | None = None,
        kind: str = "social",
        lang: str = "en",
        model_scores: Mapping[str, float] | None = None,
    ) -> Categorisation:
        """Labels for one post: the rules', combined with the attached model's (``model_scores``: its class
        probabilities for this post when already computed, as :meth:`classify_many` does for a batch)."""
        cats = self.classify_rules(text, title=title, kind=kind, lang=lang)
        if self.trained is None:
            return cats
        if model_scores is None:
            from openear.enrich.trained import model_text

            model_scores = self.trained.scores([model_text(text, title)], [kind], [lang])[0]
        return self.combine(cats, model_scores, kind=kind)

    def classify_many(
        self, items: Sequence[tuple[str, str | None, str, str]], embeddings: Any = None
    ) -> list[Categorisation]:
        """Labels for many ``(text, title, kind, lang)``; the attached model scores them in one pass
        (``embeddings``: their sentence-encoder rows, when the caller has them)."""
        scores: list[Mapping[str, float] | None] = [None] * len(items)
        if self.trained is not None and items:
            from openear.enrich.trained import model_text

            scores = list(
                self.trained.scores(
                    [model_text(t, ti) for t, ti, _, _ in items],
                    [k for _, _, k, _ in items],
                    [lg for _, _, _, lg in items],
                    embeddings if self.trained.needs_encoder else None,
                )
            )
        return [
            self.classify(t, title=ti, kind=k, lang=lg, model_scores=sc)
            for (t, ti, k, lg), sc in zip(items, scores, strict=True)
        ]

    def combine(self, cats: Categorisation, scores: Mapping[str, float], *, kind: str) -> Categorisation:
        """The rules' categorisation with the attached model's confident categories and primary added."""
        model = self.trained
        news, fallback = self.news_category, self.fallback_category
        usable = {
            c: float(p)
            for c, p in scores.items()
            if c in self.categories and not self.categories[c].protected and (kind == "news" or c != news)
        }
        if model is None or not usable:
            return cats
        top = max(usable, key=lambda c: (usable[c], c))
        threshold = getattr(model, "combine_threshold", model.threshold)
        chosen = {c for c, p in usable.items() if p >= threshold} if model.multi_label else set()
        if usable[top] >= threshold:
            chosen.add(top)
        chosen.discard(fallback)  # "nothing matched" stays the rules' call
        if not chosen:
            return cats
        enricher = model.enricher
        by_key: dict[str, Label] = {lb.value: lb for lb in cats.labels if lb.name == "category"}
        if fallback in by_key and fallback not in chosen and by_key[fallback].enricher == self.enricher:
            del by_key[fallback]  # the model found a topic where the rules found none
        for c in chosen:
            by_key.setdefault(c, Label("category", c, round(usable[c], 4), enricher))
        primary_label = next(lb for lb in cats.labels if lb.name == "primary")
        primary = cats.primary
        if top in chosen and top != cats.primary:
            primary, primary_label = top, Label("primary", top, round(usable[top], 4), enricher)
        categories = [k for k in self.categories if k in by_key]
        subs = [lb for lb in cats.labels if lb.name == "subcategory"]
        labels = [by_key[k] for k in categories] + subs + [primary_label]
        return Categorisation(tuple(labels), primary, tuple(categories))

    def classify_rules(
        self, text: str, *, title: str | None = None, kind: str = "social", lang: str = "en"
    ) -> Categorisation:
        """The rules' labels for one post. ``lang`` is accepted for the interface; every language's terms apply."""
        folded = fold(f"{title}\n{text}" if title else text)
        positions: dict[str, set[int]] = {}
        sub_positions: dict[tuple[str, str], set[int]] = {}
        for target, pos in self._matcher.find(folded):
            key, sub = self._targets[target]
            positions.setdefault(key, set()).add(pos)
            if sub is not None:
                sub_positions.setdefault((key, sub), set()).add(pos)
        if self.queries:
            from openear.query import Document, prepare

            doc = prepare(Document(text=text, title=title, kind=kind, lang=lang))
            for (key, sub), query in self.queries.items():
                if query.matches(doc):
                    pos = _QUERY_HIT - len(positions.get(key, ()))  # a distinct hit, after any term hit
                    positions.setdefault(key, set()).add(pos)
                    if sub is not None:
                        sub_positions.setdefault((key, sub), set()).add(pos)
        found: dict[str, tuple[int, int, dict[str, int]]] = {}  # category -> (hits, first word, sub hits)
        for key, pos_set in positions.items():
            subs = {sub: len(p) for (k, sub), p in sub_positions.items() if k == key}
            found[key] = (len(pos_set), min(pos_set), subs)
        news_cat, fallback = self.news_category, self.fallback_category
        topical = {k: v for k, v in found.items() if k not in (news_cat, fallback)}
        best = min(topical, key=lambda k: (-topical[k][0], topical[k][1])) if topical else None
        labels: list[Label] = []
        categories: list[str] = []
        enricher = self.enricher
        if kind == "news":
            keep = dict(topical)
            keep[news_cat] = found.get(news_cat, (0, -1, {}))
            primary = best if best is not None and topical[best][0] >= self.news_topical_min_hits else news_cat
        else:
            keep = dict(topical)
            primary = best if best is not None else fallback
            if best is None:
                keep[fallback] = (0, -1, {})
        for key in self.categories:  # taxonomy order
            if key not in keep:
                continue
            hits, _, subs = keep[key]
            score = 1.0 if (key == news_cat and kind == "news") else (_score(hits) if hits else 0.5)
            categories.append(key)
            labels.append(Label("category", key, score, enricher))
            for sub, n in subs.items():
                labels.append(Label("subcategory", f"{key}/{sub}", _score(n), enricher))
        hits = keep[primary][0]
        p_score = 1.0 if (primary == news_cat and kind == "news" and not topical) else (_score(hits) if hits else 0.5)
        labels.append(Label("primary", primary, p_score, enricher))
        return Categorisation(tuple(labels), primary, tuple(categories))
