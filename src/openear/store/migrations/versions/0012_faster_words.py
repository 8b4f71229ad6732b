"""Faster ``openear_words`` and ``openear_doc`` on PostgreSQL (issue 7): same words, a third of the time.

The search-index trigger on ``posts`` (0001) computes the words of every inserted post with ``openear_words``, which
split the text, then folded each word apart (a regex test for non-ASCII, then ``translate``) and put the words back
in order with an ordered aggregate. Now the whole text is folded once, then split, and the empty strings dropped:

- ASCII-only text (most posts): ``lower(t COLLATE "C")`` (folds A-Z only, whatever the database's locale), split on
  ``[^a-z0-9]+``.
- Other text: one ``translate`` of the whole text with the unicode61 table, split on the unicode61 separators.
  Folding first gives the same words as splitting first, because no separator is in the table and the table maps a
  word character only to a word character or to nothing (the module asserts both). ``translate`` looks each
  character up by scanning its table from the start, so the table now begins with the characters that English and
  Spanish text is mostly made of (unmapped ones as identities): a letter is found in a few steps, not after the
  1,300 entries that an unmapped one (lower case, digits, spaces) used to cost.

``openear_doc`` lets ``array_to_tsvector`` drop the duplicates (it sorts and de-duplicates, PostgreSQL 15+) rather
than a ``DISTINCT`` subquery. Nothing on SQLite. The downgrade restores the definitions of 0001.

Revision ID: 0012_faster_words
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op

revision = "0012_faster_words"
down_revision = "0001"
branch_labels = None
depends_on = None

# Looked up first by translate(): the usual characters of English and Spanish text, most frequent first.
_FREQUENT = (
    " eaosnrilt" "dcumpbgvyqhfzjxkw" "ESACTPMNLDIRBOGUFHVWYQKJZX" ".,0123456789!?-;()/\"\n"
    "éáíóúñüàèçêâôîûëïœ¿¡—–…’‘“”«»·ÉÁÍÓÚÑ"
)


def _pg_regex_char(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _tables() -> tuple[str, str, str, str, str, str, str]:
    """``(seps, src, dst, fast_src, fast_dst, upper, lower)``: the 0001 tables and the reordered one."""
    from openear.query._unicode61 import FOLD, SEPARATORS

    def is_sep(code: int) -> bool:
        return any(a <= code <= b for a, b in SEPARATORS)

    # Folding the whole text before splitting it is only the same as folding each word after if these hold.
    assert not any(is_sep(k) for k in FOLD), "a separator is folded"
    assert all(len(v) <= 1 and not any(is_sep(ord(c)) for c in v) for v in FOLD.values()), "folds to a separator"
    seps = "".join(
        _pg_regex_char(max(a, 1)) if max(a, 1) == b else f"{_pg_regex_char(max(a, 1))}-{_pg_regex_char(b)}"
        for a, b in SEPARATORS
    )
    kept = [(k, v) for k, v in sorted(FOLD.items()) if v]
    dropped = [k for k, v in sorted(FOLD.items()) if not v]
    src = "".join(chr(k) for k, _ in kept) + "".join(chr(k) for k in dropped)
    dst = "".join(v for _, v in kept)
    upper = "".join(chr(k) for k, _ in kept if k < 128)
    lower = "".join(v for k, v in kept if k < 128)
    first = list(dict.fromkeys(_FREQUENT))
    assert all(FOLD.get(ord(c)) != "" for c in first)  # dropped characters must stay at the end of the table
    rest = [(k, v) for k, v in kept if chr(k) not in first]
    fast_src = "".join(first) + "".join(chr(k) for k, _ in rest) + "".join(chr(k) for k in dropped)
    fast_dst = "".join(FOLD.get(ord(c), c) for c in first) + "".join(v for _, v in rest)
    for chars in (src, dst, seps, fast_src, fast_dst):
        assert "'" not in chars and ":" not in chars and "%" not in chars and "\x00" not in chars
    return seps, src, dst, fast_src, fast_dst, upper, lower


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    seps, _, _, fast_src, fast_dst, _, _ = _tables()
    conn = op.get_bind()
    conn.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION openear_words(t text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
        "AS $oe$ SELECT CASE WHEN t ~ '[^\\u0001-\\u007f]' "
        f"THEN array_remove(regexp_split_to_array(translate(t, '{fast_src}', '{fast_dst}'), '[{seps}]+'), '') "
        "ELSE array_remove(regexp_split_to_array(lower(t COLLATE \"C\"), '[^a-z0-9]+'), '') END $oe$"
    )
    conn.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION openear_doc(w text[]) RETURNS tsvector LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
        "AS $oe$ SELECT array_to_tsvector(ARRAY(SELECT left(x, 500) FROM unnest(w) AS x)) $oe$"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    seps, src, dst, _, _, upper, lower = _tables()
    conn = op.get_bind()
    conn.exec_driver_sql(  # as 0001 created them
        "CREATE OR REPLACE FUNCTION openear_words(t text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
        "AS $oe$ SELECT coalesce(array_agg(f ORDER BY i) FILTER (WHERE f <> ''), '{}') FROM ("
        f"SELECT i, CASE WHEN w ~ '[^\\u0001-\\u007f]' THEN translate(w, '{src}', '{dst}') "
        f"ELSE translate(w, '{upper}', '{lower}') END AS f "
        f"FROM unnest(regexp_split_to_array(t, '[{seps}]+')) WITH ORDINALITY AS x(w, i)) AS y $oe$"
    )
    conn.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION openear_doc(w text[]) RETURNS tsvector LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
        "AS $oe$ SELECT array_to_tsvector(ARRAY(SELECT DISTINCT left(x, 500) FROM unnest(w) AS x)) $oe$"
    )
