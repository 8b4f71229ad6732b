#!/usr/bin/env python3
"""Seconds ``openear train`` takes (5-fold CV + the final fit) for a few hundred examples, per feature set.

    .venv/bin/python benchmarks/train.py [--copies 3] [--json PATH]

Uses ``../shared/data/driver-feedback/dev.jsonl`` (164 labelled items), and that set ``--copies`` times over with
a suffix on each text (492 examples by default) for the "few hundred examples" case of issue 8 (target: under a
minute on 2 cores). The sentence encoder's load (first ``embeddings`` run) is included, as the command pays it.
Also prints the cross-validated macro F1 of the model alone, the taxonomy rules alone and rules + model.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from openear.enrich.classify import Classifier
from openear.train import examples_from_file, train

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "driver-feedback" / "dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DEV.exists():
        raise SystemExit(f"{DEV}: not found (the shared data sets sit next to the repository)")
    dev = examples_from_file(DEV)
    many = [replace(e, text=f"{e.text} ({k})") for k in range(args.copies) for e in dev]
    classifier = Classifier.load(None)
    rows = []
    for features in ("embeddings", "tfidf", "both"):
        for examples in (dev, many):
            start = time.perf_counter()
            result = train(examples, version=1, features=features, classifier=classifier)
            seconds = time.perf_counter() - start
            row = {
                "features": features,
                "examples": len(examples),
                "seconds": round(seconds, 1),
                "model_macro_f1": result.macro_f1,
                **result.extra,
            }
            rows.append(row)
            print(
                f"{features:10s} {len(examples):4d} examples  {seconds:5.1f} s  model F1 {result.macro_f1:.3f}  "
                f"rules {result.extra['rules_macro_f1']:.3f}  rules+model {result.extra['combined_macro_f1']:.3f}"
                f"  (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
