"""Hypothesis strategies shared by the query tests: random posts and random (canonical) query trees."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import strategies as st

from openear.query.ast import And, DateFilter, Field, Near, Node, Not, Or, Phrase, Term

# Words that collide under folding (case, accents), share stems, or fold in FTS5's own way.
VOCAB = [
    "tips", "tip", "Tips", "TIP", "tipping", "propinas", "Propinas", "propína", "desactivación", "desactivacion",
    "DESACTIVACIÓN", "desactivar", "app", "App", "missing", "stolen", "pay", "pago", "niño", "nino", "cafe",
    "cafe\u0301", "straße", "strasse", "1ª", "2º", "x²", "ﬁn", "İstanbul", "ǅemal", "Ωmega", "наш", "日本",
    "e-mail", "don't", "42", "4x4", "a", "b", "c",
]
SEPARATORS = [" ", " ", " ", ", ", ". ", "-", "\n", "'", " — ", "!", "_", "/", " (", ") ", "¿", "…"]
TERMS = ["tips", "tip", "TIPS", "propinas", "propina", "desactivacion", "Desactivación", "app", "missing", "stolen",
         "pay", "pago", "nino", "niño", "cafe", "café", "straße", "strasse", "1ª", "1a", "x²", "ﬁn", "fin",
         "istanbul", "i̇stanbul", "ǆemal", "ωmega", "наш", "日本", "e-mail", "don't", "42", "4x4", "a", "b", "c",
         "tip*", "tipp*", "desactiv*", "pro*", "t?ps", "t?p", "c?fe", "pro*nas", "*ips", "?ip", "st*n", "a*", "x*"]
LANGS = ["en", "es", "fr"]
SOURCES = ["reddit-a", "news-b", "x c"]
CATEGORIES = ["pay_tips", "app_bugs", "safety"]
SENTIMENTS = ["positive", "neutral", "negative"]
COUNTRIES = ["GB", "US", "ES"]
CLUSTERS = [1, 2, 3]  # cluster ids posts may have (the tests store these clusters); queries also ask for 4
START = datetime(2026, 1, 1)


@st.composite
def texts(draw: st.DrawFn, max_words: int = 14) -> str:
    n = draw(st.integers(0, max_words))
    out = [draw(st.sampled_from(SEPARATORS)) if draw(st.booleans()) else ""]
    for _ in range(n):
        out.append(draw(st.sampled_from(VOCAB)))
        out.append(draw(st.sampled_from(SEPARATORS)))
    if draw(st.integers(0, 9)) == 0:  # now and then, any text at all
        out.append(draw(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)))
    return "".join(out)


@st.composite
def posts(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["social", "social", "news"]))
    cats = draw(st.sets(st.sampled_from(CATEGORIES), max_size=2))
    primary = draw(st.sampled_from([None, *sorted(cats)])) if cats else draw(st.sampled_from([None, "safety"]))
    return {
        "kind": kind,
        "text": draw(texts()),
        "title": draw(st.none() | texts(6)),
        "lang": draw(st.sampled_from(LANGS)),
        "source": draw(st.sampled_from(SOURCES)),
        "category": primary,
        "categories": cats,
        "sentiment": draw(st.none() | st.sampled_from(SENTIMENTS)),
        "country": draw(st.none() | st.sampled_from(COUNTRIES)),
        "cluster_id": draw(st.none() | st.sampled_from(CLUSTERS)),
        "created_at": START + timedelta(hours=draw(st.integers(0, 24 * 60)), seconds=draw(st.integers(0, 3599))),
    }


field_of = st.sampled_from(["any", "any", "any", "title"])
terms = st.builds(Term, st.sampled_from(TERMS))
phrases = st.builds(
    lambda ws: Phrase(" ".join(ws)), st.lists(st.sampled_from(TERMS), min_size=1, max_size=3)
)
leaves_any = terms | phrases
operands = leaves_any | st.builds(lambda xs: Or(tuple(xs)), st.lists(leaves_any, min_size=2, max_size=3))


def _titled(node: Term | Phrase, field: str) -> Term | Phrase:
    return type(node)(node.text, field)  # type: ignore[arg-type]


text_leaves = (
    st.builds(_titled, leaves_any, field_of)
    | st.builds(Near, operands, operands, st.integers(0, 4), st.booleans(), field_of)
)
fields = (
    st.builds(Field, st.just("lang"), st.sampled_from(LANGS))
    | st.builds(Field, st.just("source"), st.sampled_from(SOURCES))
    | st.builds(Field, st.just("kind"), st.sampled_from(["social", "news"]))
    | st.builds(Field, st.just("category"), st.sampled_from(CATEGORIES))
    | st.builds(Field, st.just("sentiment"), st.sampled_from(SENTIMENTS))
    | st.builds(Field, st.just("country"), st.sampled_from(COUNTRIES))
    | st.builds(Field, st.just("cluster"), st.sampled_from([str(c) for c in (*CLUSTERS, 4)]))
    | st.builds(DateFilter, st.sampled_from(["after", "before"]),
                st.dates(date(2025, 12, 30), date(2026, 3, 3)))
)


def _flat(cls: type, items: list[Node]) -> Node:
    flat: list[Node] = []
    for n in items:
        flat.extend(n.items if isinstance(n, cls) else (n,))  # type: ignore[attr-defined]
    return flat[0] if len(flat) == 1 else cls(tuple(flat))


def trees(text_only: bool = False) -> st.SearchStrategy[Node]:
    base = text_leaves if text_only else (text_leaves | text_leaves | fields)
    return st.recursive(
        base,
        lambda kids: (
            st.builds(lambda xs: _flat(And, xs), st.lists(kids, min_size=2, max_size=4))
            | st.builds(lambda xs: _flat(Or, xs), st.lists(kids, min_size=2, max_size=4))
            | st.builds(Not, kids)
        ),
        max_leaves=8,
    )
