"""Words, the way the store's full-text index sees them.

A word is a run of letters or digits, folded to lower case without diacritics (``Desactivación`` ->
``desactivacion``). The rules are exactly those of SQLite FTS5's ``unicode61`` tokenizer with
``remove_diacritics 2`` (the tokenizer of ``posts_fts``), read from SQLite into :mod:`._unicode61`, so that the
Python evaluator and the SQL search can never disagree about what a word is. For English and Spanish text this is
the same as NFKD + removing combining marks + case folding; for a few rarer characters FTS5 differs (``ß`` stays
``ß``, ``ª`` stays ``ª``, ``²`` stays ``²``) and this module follows FTS5.
"""

from __future__ import annotations

import re
from functools import lru_cache

from openear.query._unicode61 import FOLD, SEPARATORS

__all__ = ["WILDCARDS", "fold", "pattern_words", "words"]

WILDCARDS = "*?"


def _class(ranges: tuple[tuple[int, int], ...], extra: str = "") -> str:
    parts = [re.escape(c) for c in extra]
    for a, b in ranges:
        parts.append(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}")
    return "".join(parts)


def _without(ranges: tuple[tuple[int, int], ...], chars: str) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    drop = sorted(ord(c) for c in chars)
    for a, b in ranges:
        start = a
        for d in drop:
            if start <= d <= b:
                if start < d:
                    out.append((start, d - 1))
                start = d + 1
        if start <= b:
            out.append((start, b))
    return tuple(out)


_WORD = re.compile(f"[^{_class(SEPARATORS)}]+")
_PATTERN_WORD = re.compile(f"[^{_class(_without(SEPARATORS, WILDCARDS))}]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_FOLD_TABLE: dict[int, str | None] = {k: (v or None) for k, v in FOLD.items()}


def fold(word: str) -> str:
    """A word's folded form (lower case, no diacritics); may be empty when it held only combining marks."""
    return word.lower() if word.isascii() else word.translate(_FOLD_TABLE)


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order (empty words, made of combining marks only, are skipped)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    out = []
    for m in _WORD.finditer(text):
        w = m.group().translate(_FOLD_TABLE)
        if w:
            out.append(w)
    return out


@lru_cache(maxsize=4096)
def pattern_words(text: str) -> tuple[str, ...]:
    """Like :func:`words`, but ``*`` and ``?`` stay inside words as wildcards."""
    out = []
    for m in _PATTERN_WORD.finditer(text):
        w = m.group().translate(_FOLD_TABLE)
        if w:
            out.append(w)
    return tuple(out)
