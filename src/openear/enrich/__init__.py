"""Enrichment: language, near-duplicate clusters, categories, sentiment. Each enricher labels ``name@version``.

:class:`Enrichment` runs the shipped enrichers over a batch of guarded posts and returns :class:`EnrichedPost`
objects for the store. Each stage lives in its own module; this one only wires them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from openear.enrich.classify import Classifier
from openear.enrich.dedupe import Deduper
from openear.enrich.language import LanguageDetector
from openear.enrich.sentiment import DEFAULT_MODE, LABELS, check_mode, load_sentiment
from openear.models import EnrichedPost, GuardedPost, Label

__all__ = ["Enrichment", "content_hash"]


def content_hash(post: GuardedPost) -> str:
    """A digest of everything the store keeps of a post, to tell a changed post from a re-delivered one."""
    parts = [
        post.platform,
        post.kind,
        post.visibility,
        post.created_at.isoformat(),
        post.text,
        post.title or "",
        post.url or "",
        post.author_pseudonym or "",
        post.lang_hint or "",
        post.country or "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class Enrichment:
    """The default enrichers, loaded once per process.

    ``mode`` picks the sentiment model (:data:`openear.enrich.sentiment.MODES`): ``fast`` (the default; sentence
    encoder + n-grams), ``accurate`` (opt-in, when shipped) or ``rules`` (taxonomy rules and the hashed n-gram
    sentiment model only, for bulk backfills).

    ``trained``: the active analyst-trained category model (``openear train``), combined with the taxonomy rules;
    in ``rules`` mode only when it needs no sentence encoder (a ``--features tfidf`` model).
    """

    def __init__(self, taxonomy_path: Path | None = None, mode: str = DEFAULT_MODE, trained: Any = None) -> None:
        self.mode = check_mode(mode)
        self.language = LanguageDetector()
        self.deduper = Deduper()
        self.classifier = Classifier.load(taxonomy_path)
        self.sentiment = load_sentiment(mode)
        if trained is not None and (self.mode != "rules" or not trained.needs_encoder):
            self.classifier.attach(trained)

    def warm_deduper(self, signatures: object, since: datetime | None = None) -> None:
        """Teach the deduper the signatures of recent stored posts (iterable of (cluster key, post key, bytes))."""
        self.deduper.load(signatures)  # type: ignore[arg-type]

    def _sentiment(self, texts: list[str], langs: list[str]) -> tuple[list[tuple[str, float]], Any]:
        """Sentiment of each text, and the sentence embeddings when an attached category model needs them
        (computed once for both models when the sentiment model is the fast one)."""
        trained = self.classifier.trained
        encoder = getattr(self.sentiment, "encoder", None)
        if trained is None or not trained.needs_encoder or encoder is None or not hasattr(self.sentiment, "combine"):
            return self.sentiment.predict(texts, langs), None
        embeddings = encoder.encode(texts)
        p = self.sentiment.combine(embeddings, texts, langs)
        best = p.argmax(axis=1)
        return [(LABELS[i], round(float(p[row, i]), 4)) for row, i in enumerate(best)], embeddings

    def enrich(self, batch: Sequence[GuardedPost]) -> list[EnrichedPost]:
        if not batch:
            return []
        langs = [self.language.detect(p.text if not p.title else f"{p.title}. {p.text}", hint=p.lang_hint)
                 for p in batch]
        texts = [p.text if not p.title else f"{p.title}. {p.text}" for p in batch]
        codes = [lang for lang, _ in langs]
        sentiments, embeddings = self._sentiment(texts, codes)
        categorised = self.classifier.classify_many(
            [(p.text, p.title, p.kind, lang) for p, lang in zip(batch, codes, strict=True)], embeddings)
        out: list[EnrichedPost] = []
        for post, (lang, lang_score), (sent, sent_score), cats in zip(batch, langs, sentiments, categorised,
                                                                      strict=True):
            labels: list[Label] = [Label("lang", lang, lang_score, self.language.enricher)]
            labels.extend(cats.labels)
            labels.append(Label("sentiment", sent, sent_score, self.sentiment.enricher))
            key = f"{post.source}\x1f{post.external_id}"
            cluster_key, signature = self.deduper.assign(key, post.text)
            out.append(
                EnrichedPost(
                    post=post,
                    labels=tuple(labels),
                    lang=lang,
                    sentiment=sent,
                    category=cats.primary,
                    content_hash=content_hash(post),
                    cluster_key=cluster_key,
                    minhash=signature,
                )
            )
        return out
