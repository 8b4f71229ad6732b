"""The term matcher shared by the taxonomy rules and the guard: its indexes (by first word, by the first two
words of a phrase, by a stem's first three letters) find exactly what checking every term at every word finds."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from openear.textmatch import TermMatcher, fold, parse_term

VOCAB = ["the", "guardian", "we", "need", "to", "organize", "organise", "strike", "a", "project", "on", "writer",
         "at", "huelga", "huelgas", "log", "off", "mass", "union", "unions", "of", "two"]
TERMS = ["the guardian", "we need to organi*", "strike", "huelg*", "log off", "mass log off", "a project on",
         "writer at", "union*", "union of two", "of two", "organiz* a union", "log-off", "the", "two"]
GAPS = [" ", "  ", "-", ".", ", ", " - ", "'"]
_LOOSE = re.compile(r"[\s\-.]+")


def reference(terms: list[tuple[str, int]], text: str) -> list[tuple[int, int]]:
    """Every term checked at every word, without any index."""
    tokens = list(re.finditer(r"\w+", text))
    out = set()
    for term, target in terms:
        t = parse_term(term, target)
        for i in range(len(tokens) - len(t.words) + 1):
            ok = True
            for k, (word, is_stem) in enumerate(t.words):
                tok = tokens[i + k].group()
                if not (tok.startswith(word) if is_stem else tok == word):
                    ok = False
                    break
                if k:
                    gap, want = text[tokens[i + k - 1].end():tokens[i + k].start()], t.gaps[k - 1]
                    if (want is None and not _LOOSE.fullmatch(gap)) or (want is not None and gap != want):
                        ok = False
                        break
            if ok:
                out.add((target, i))
    return sorted(out)


@settings(max_examples=500, deadline=None)
@given(
    words=st.lists(st.sampled_from(VOCAB), max_size=14),
    gaps=st.lists(st.sampled_from(GAPS), min_size=14, max_size=14),
    targets=st.lists(st.integers(0, 2), min_size=len(TERMS), max_size=len(TERMS)),
)
def test_the_indexes_find_what_checking_every_term_finds(words: list[str], gaps: list[str],
                                                          targets: list[int]) -> None:
    terms = list(zip(TERMS, targets, strict=True))
    text = fold("".join(w + g for w, g in zip(words, gaps, strict=False)))
    assert sorted(set(TermMatcher(terms).find(text))) == reference(terms, text)


def test_a_phrase_is_found_by_its_first_two_words_only_with_its_gaps() -> None:
    m = TermMatcher([("the guardian", 1), ("we need to organi*", 0)])
    assert m.find("i read the guardian today") == [(1, 2)] and m.find("it was in the guardian") == [(1, 3)]
    assert m.find("we need to organise now") == [(0, 0)]
    assert m.find("the, guardian") == [] and m.find("we need organise") == []
