"""Whole-word term matching on case- and accent-folded text, shared by the taxonomy rules and the guard.

Terms are words, trailing-``*`` stems and multi-word phrases (words separated by spaces, hyphens or dots).
:class:`TermMatcher` finds them with one pass over a text's words and dictionary look-ups: no regex alternation,
so thousands of terms cost about as much as ten.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["TermMatcher", "fold", "parse_term", "validate_term", "words"]

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00b4": "'", "`": "'"})
_TERM_WORD = re.compile(r"^[\w'.\-]*\w[\w'.\-]*\*?$")


def fold(text: str) -> str:
    """Lower case without accents (``"Propína"`` -> ``"propina"``); ``ñ`` becomes ``n``."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_QUOTES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def validate_term(term: object) -> str | None:
    """Why ``term`` is not a valid rule term, or ``None`` when it is."""
    if not isinstance(term, str):
        return f"must be a string, not {type(term).__name__}"
    words = fold(term).split()
    if not words:
        return "empty term"
    for w in words:
        if not _TERM_WORD.match(w) or w.count("*") > 1:
            return (f"{term!r}: only letters, digits, spaces, hyphens, apostrophes, dots and a trailing * are "
                    "allowed")
        if w.endswith("*") and len(w) < 4:
            return f"{term!r}: a stem needs at least 3 characters before *"
    return None


_WORDS = re.compile(r"\w+")
_LOOSE_GAP = re.compile(r"[\s\-.]+")


@dataclass(frozen=True)
class _Term:
    """A parsed rule term: words (each exact or a stem) and the gaps that must separate them."""

    words: tuple[tuple[str, bool], ...]  # (word or stem, is_stem)
    gaps: tuple[str | None, ...]  # between word k and k+1: None = any run of spaces/hyphens/dots, else exact text
    target: int


def parse_term(term: str, target: int) -> _Term:
    """Split a (valid) term into words the way post text is split: runs of letters and digits."""
    t = fold(term).strip()
    matches = list(_WORDS.finditer(t))
    words = []
    for k, m in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(t)
        words.append((m.group(), t[m.end():end].startswith("*")))
    gaps = []
    for a, b in itertools.pairwise(matches):
        gap = t[a.end():b.start()].replace("*", "")
        gaps.append(None if _LOOSE_GAP.fullmatch(gap) else gap)
    return _Term(tuple(words), tuple(gaps), target)


class TermMatcher:
    """Finds rule terms in folded text with one pass over its words: dictionary look-ups, no regex alternation.

    ``find(text)`` yields ``(target, word index)`` for each term occurrence; ``target`` is what the term was
    registered for. Stems are indexed by their first three characters.
    """

    def __init__(self, terms: list[tuple[str, int]]) -> None:
        self._exact: dict[str, list[_Term]] = {}
        self._pairs: dict[tuple[str, str], list[_Term]] = {}  # phrases by their first two (exact) words
        self._stems: dict[str, list[_Term]] = {}
        for term, target in terms:
            parsed = parse_term(term, target)
            first, is_stem = parsed.words[0]
            if is_stem:
                self._stems.setdefault(first[:3], []).append(parsed)
            elif len(parsed.words) > 1 and not parsed.words[1][1]:
                # "the guardian", "we need to organi*": looked up by two words, so that a common first word
                # ("the", "we") costs one dictionary look-up, not a check of every phrase it starts
                self._pairs.setdefault((first, parsed.words[1][0]), []).append(parsed)
            else:
                self._exact.setdefault(first, []).append(parsed)

    @staticmethod
    def _rest(term: _Term, text: str, tokens: list[re.Match[str]], i: int) -> bool:
        n = len(term.words)
        if i + n > len(tokens):
            return False
        for k in range(1, n):
            word, is_stem = term.words[k]
            tok = tokens[i + k].group()
            if not (tok.startswith(word) if is_stem else tok == word):
                return False
            gap = text[tokens[i + k - 1].end():tokens[i + k].start()]
            want = term.gaps[k - 1]
            if (want is None and not _LOOSE_GAP.fullmatch(gap)) or (want is not None and gap != want):
                return False
        return True

    def find(self, text: str) -> list[tuple[int, int]]:
        tokens = list(_WORDS.finditer(text))
        words = [m.group() for m in tokens]
        found: list[tuple[int, int]] = []
        exact, pairs, stems = self._exact, self._pairs, self._stems
        last = len(words) - 1
        for i, word in enumerate(words):
            seen: set[int] = set()
            for term in exact.get(word, ()):
                if term.target not in seen and (len(term.words) == 1 or self._rest(term, text, tokens, i)):
                    seen.add(term.target)
                    found.append((term.target, i))
            if i < last and pairs:
                for term in pairs.get((word, words[i + 1]), ()):
                    if term.target not in seen and self._rest(term, text, tokens, i):
                        seen.add(term.target)
                        found.append((term.target, i))
            for term in stems.get(word[:3], ()):
                if term.target not in seen and word.startswith(term.words[0][0]) and (
                        len(term.words) == 1 or self._rest(term, text, tokens, i)):
                    seen.add(term.target)
                    found.append((term.target, i))
        return found


def words(text: str) -> list[str]:
    """The folded words of ``text``."""
    return _WORDS.findall(fold(text))
