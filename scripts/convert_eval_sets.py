"""Convert the public sentiment sets and the driver-feedback dev set to ``openear eval``'s JSON Lines format.

Reads ``../shared/data`` next to the repository (or ``--data``) and writes, to ``--out`` (default: a new temporary
folder; never the repository, whose copy of shared data this script refuses to create):

- ``tweeteval-test.jsonl``: TweetEval sentiment, official test (12,284 English tweets);
- ``umsab-es-test.jsonl``: XLM-T/UMSAB Spanish test (870 tweets);
- ``tweeteval-val.jsonl`` and ``umsab-es-val.jsonl``: the validation splits;
- ``driver-feedback-dev.jsonl``: the dev set, with the fields ``openear eval`` reads.

Each line: ``{"text", "lang", "kind": "social", "sentiment"}`` (plus ``categories``/``primary``/``title`` for the
dev set). Labels 0/1/2 are negative/neutral/positive in both tweet sets (TweetEval ``mapping.txt``; UMSAB's
adapter config). Then: ``openear eval OUT/tweeteval-test.jsonl --json --mode fast``.

Usage: ``.venv/bin/python scripts/convert_eval_sets.py [--data DIR] [--out DIR]``; prints the folder written.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("negative", "neutral", "positive")


def read_lines(path: Path) -> list[str]:
    """Rows of a one-item-per-line file; the UMSAB files have no trailing newline."""
    rows = path.read_text(encoding="utf-8").split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    return rows


def tweet_rows(folder: Path, split: str, lang: str) -> list[dict[str, Any]]:
    texts = read_lines(folder / f"{split}_text.txt")
    labels = read_lines(folder / f"{split}_labels.txt")
    if len(texts) != len(labels):
        raise SystemExit(f"{folder}/{split}: {len(texts)} texts but {len(labels)} labels")
    rows = []
    for text, label in zip(texts, labels, strict=True):
        if text.strip():
            rows.append({"text": text.strip(), "lang": lang, "kind": "social", "sentiment": LABELS[int(label)]})
    return rows


def dev_rows(path: Path) -> list[dict[str, Any]]:
    keep = ("text", "title", "lang", "kind", "categories", "primary", "sentiment")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            rows.append({k: obj[k] for k in keep if k in obj})
    return rows


def write(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    args = ap.parse_args()
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="openear-eval-"))
    if out.resolve().is_relative_to(ROOT.resolve()):
        raise SystemExit(f"{out}: inside the repository; shared data is never copied into it (pick a temp folder)")
    te, es, dev = (args.data / d for d in ("tweeteval-sentiment", "xlmt-umsab-spanish", "driver-feedback"))
    for needed in (te, es, dev):
        if not needed.is_dir():
            raise SystemExit(f"{needed}: not found (the team's shared data)")
    out.mkdir(parents=True, exist_ok=True)
    sets = {
        "tweeteval-test.jsonl": tweet_rows(te, "test", "en"),
        "tweeteval-val.jsonl": tweet_rows(te, "val", "en"),
        "umsab-es-test.jsonl": tweet_rows(es, "test", "es"),
        "umsab-es-val.jsonl": tweet_rows(es, "val", "es"),
        "driver-feedback-dev.jsonl": dev_rows(dev / "dev.jsonl"),
    }
    for name, rows in sets.items():
        print(f"{out / name}: {write(out / name, rows)} lines")
    print(out)


if __name__ == "__main__":
    main()
