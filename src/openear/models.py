"""Frozen dataclasses passed between the pipeline's stages. No I/O here.

The way a post travels: ``RawItem`` (what a connector or importer read) -> ``Post`` (normalised, still holding
the author's identity, memory only) -> ``GuardedPost`` (pseudonymised, scrubbed, allowed to be stored) plus
``Label``s from the enrichers. Only :mod:`openear.guard` can build a ``GuardedPost``; the store accepts nothing
else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Visibility = Literal["public", "consented"]
ItemVisibility = Literal["public", "consented", "private", "closed", "secret"]
Kind = Literal["social", "news"]
Sentiment = Literal["positive", "neutral", "negative"]

SOURCE_VISIBILITIES: tuple[str, ...] = ("public", "consented")
ITEM_VISIBILITIES: tuple[str, ...] = ("public", "consented", "private", "closed", "secret")
REFUSED_VISIBILITIES: tuple[str, ...] = ("private", "closed", "secret")
KINDS: tuple[str, ...] = ("social", "news")
SENTIMENTS: tuple[str, ...] = ("positive", "neutral", "negative")


@dataclass(frozen=True, slots=True)
class RawItem:
    """One item as read from a source, before any interpretation. Lives in memory only."""

    source: str
    payload: dict[str, Any]
    origin: str = ""  # where it came from, for error messages: "posts.jsonl:12" or a URL
    line: int | None = None


@dataclass(frozen=True, slots=True)
class CursorMark:
    """Put in a connector's item stream: every item before it is covered by ``value``, the source's new cursor.

    The pipeline saves the newest mark in the same transaction as the batch that holds those items.
    """

    value: str


@dataclass(frozen=True, slots=True)
class Post:
    """A normalised item. Holds the author's identity: never stored, never logged."""

    source: str
    external_id: str
    platform: str
    kind: Kind
    visibility: ItemVisibility
    created_at: datetime  # timezone-aware, UTC
    text: str
    title: str | None = None
    url: str | None = None
    author_id: str | None = None
    author_handle: str | None = None
    author_name: str | None = None
    author_url: str | None = None
    avatar_url: str | None = None
    lang_hint: str | None = None
    country: str | None = None
    origin: str = field(default="", compare=False)

    def __repr__(self) -> str:  # never print who wrote it
        return f"Post(source={self.source!r}, external_id={self.external_id!r}, kind={self.kind!r})"


_SEAL: list[object] = []  # filled once by openear.guard at import time


@dataclass(frozen=True, slots=True)
class GuardedPost:
    """A post that passed the guard: pseudonymous author, scrubbed text. The only thing the store accepts.

    Built only by :func:`openear.guard.Guard.check`; constructing one anywhere else raises ``TypeError``.
    """

    source: str
    external_id: str
    platform: str
    kind: Kind
    visibility: Visibility
    created_at: datetime
    text: str
    title: str | None
    url: str | None
    author_pseudonym: str | None
    lang_hint: str | None
    country: str | None
    scrubbed: tuple[str, ...]  # kinds of things scrubbed from this post: "email", "phone", "handle", "url"
    seal: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _SEAL or self.seal is not _SEAL[0]:
            raise TypeError("GuardedPost can only be built by openear.guard")


@dataclass(frozen=True, slots=True)
class Label:
    """One enricher's verdict on a post: ``name`` is what (lang, category, subcategory, primary, sentiment)."""

    name: str
    value: str
    score: float
    enricher: str  # "name@version"


@dataclass(frozen=True, slots=True)
class EnrichedPost:
    """A guarded post with its labels and near-duplicate cluster key, ready for the store."""

    post: GuardedPost
    labels: tuple[Label, ...]
    lang: str
    sentiment: str | None
    category: str | None  # the primary category
    content_hash: str
    cluster_key: str | None = None  # "source\x1fexternal_id" of the cluster's first post (near-duplicates)
    minhash: bytes | None = None  # the MinHash signature, kept so later runs can find near-duplicates


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the guard did not let an item through: ``action`` is 'rejected' or 'withheld'."""

    source: str
    day: str  # YYYY-MM-DD of the item's creation (UTC)
    action: Literal["rejected", "withheld"]
    reason: str
    digest: str = ""  # keyed digest of (source, external_id): counts a re-delivered item once


@dataclass(frozen=True, slots=True)
class InvalidItem:
    """A line of input that could not be read: ``FILE:LINE: field: problem``."""

    origin: str
    line: int | None
    field: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.origin}:{self.line}" if self.line is not None else self.origin
        return f"{where}: {self.field}: {self.problem}"


@dataclass(slots=True)
class RunStats:
    """What one run did. Mutable while the run goes, then stored as JSON on the run's row."""

    read: int = 0
    stored: int = 0
    unchanged: int = 0
    withheld: int = 0
    scrubbed: int = 0
    invalid: int = 0
    expired: int = 0  # older than the retention limit when read: never stored
    rejected: dict[str, int] = field(default_factory=dict)
    withheld_by_reason: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the first MAX_ERRORS invalid records' messages

    MAX_ERRORS = 1000  # a file of millions of bad lines must not hold millions of messages: ``invalid`` counts all

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def add_error(self, message: str) -> None:
        """Keep an invalid record's message, up to :attr:`MAX_ERRORS` of them."""
        if len(self.errors) < self.MAX_ERRORS:
            self.errors.append(message)

    @property
    def errors_left_out(self) -> int:
        """Invalid records whose message was not kept."""
        return max(0, self.invalid - len(self.errors))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["errors"] = d["errors"][:100]
        return d
