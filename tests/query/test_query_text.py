"""The word rules match SQLite FTS5's unicode61 tokenizer (remove_diacritics 2) code point by code point."""

from __future__ import annotations

import random
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from openear.query.text import fold, pattern_words, words


def fts5_words(texts: list[str]) -> list[list[str]]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(t, tokenize='unicode61 remove_diacritics 2')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance')")
    db.executemany("INSERT INTO f(rowid, t) VALUES (?, ?)", list(enumerate(texts, 1)))
    out: list[list[tuple[int, str]]] = [[] for _ in texts]
    for term, doc, offset in db.execute("SELECT term, doc, offset FROM v"):
        out[doc - 1].append((offset, term))
    return [[t for _, t in sorted(ws)] for ws in out]


def test_every_bmp_code_point_and_a_sample_of_the_rest_split_and_fold_like_fts5() -> None:
    rnd = random.Random(1)
    cps = [c for c in range(1, 0x10000) if not 0xD800 <= c < 0xE000]
    cps += rnd.sample(range(0x10000, 0x110000), 20000)
    texts = [f"a{chr(c)}a b{chr(c)}" for c in cps]
    assert [words(t) for t in texts] == fts5_words(texts)


@settings(max_examples=300)
@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40))
def test_random_text_splits_like_fts5(text: str) -> None:
    assert words(text) == fts5_words([text])[0]


def test_case_and_accents_fold_away() -> None:
    got = words("Propinas, DESACTIVACIÓN; niño 4x4 e-mail")
    assert got == ["propinas", "desactivacion", "nino", "4x4", "e", "mail"]
    assert fold("Desactivación") == "desactivacion"
    assert words("cafe\u0301") == ["cafe"]


def test_wildcards_stay_in_pattern_words() -> None:
    assert pattern_words("Deactivat* t?p") == ("deactivat*", "t?p")
