"""Analyst label overrides: a person's correction of a post's category or sentiment.

Stored as a label with score 1.0 and enricher ``analyst@<username>`` (it becomes training data for the models),
replacing that post's earlier analyst label of the same name, and written to the post's ``category`` or
``sentiment`` so aggregates follow it. Audited as ``label.change`` in the same transaction. Picking the value an
analyst already set changes nothing: no label row, no audit record (the change comes back with ``changed`` false).
Picking the value a model set is a change: it becomes an analyst label (training data that re-enrichment keeps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from openear import audit
from openear.models import SENTIMENTS
from openear.store.schema import labels, posts

__all__ = ["EDITABLE", "choices", "override_label"]

EDITABLE = {"primary": "category", "sentiment": "sentiment"}  # label name -> posts column


def choices(taxonomy_path: Path | None) -> dict[str, list[str]]:
    """The values an analyst may pick, per label name (protected topics are not among them)."""
    from openear.enrich.classify import Classifier

    try:
        topical = list(Classifier.load(taxonomy_path).topical)
    except Exception:  # a broken taxonomy file must not take the post page down
        topical = list(Classifier.load(None).topical)
    return {"primary": sorted(topical), "sentiment": list(SENTIMENTS)}


def override_label(
    conn: Connection, post_id: int, name: str, value: str, username: str, allowed: dict[str, list[str]]
) -> dict[str, Any] | None:
    """Apply one override; ``None`` when there is no such post. ``ValueError`` for a name or value not allowed.

    The change: ``name``, ``from``, ``to``, ``enricher`` and ``changed``: false when the post has ``value``
    already and by an analyst's label (the enricher returned is that analyst's), in which case nothing is
    written, audit log included. The model's value, confirmed, is a change (the label becomes the analyst's)."""
    if name not in EDITABLE:
        raise ValueError(f"label: one of {', '.join(EDITABLE)}")
    if value not in allowed.get(name, []):
        shown = value if len(value) <= 60 else value[:59] + "…"
        raise ValueError(f"{name}: {shown!r} is not one of {', '.join(allowed.get(name, []))}")
    column = EDITABLE[name]
    before = conn.execute(select(posts.c[column]).where(posts.c.id == post_id)).first()
    if before is None:
        return None
    set_by_analysts = conn.execute(
        select(labels.c.value, labels.c.enricher)
        .where(labels.c.post_id == post_id, labels.c.name == name, labels.c.enricher.like("analyst@%"))
        .order_by(labels.c.id.desc())
    ).all()
    if before[0] == value and set_by_analysts and all(v == value for v, _ in set_by_analysts):
        # an analyst's value already: no label row replaced, no audit record
        return {"name": name, "from": value, "to": value, "enricher": set_by_analysts[0][1], "changed": False}
    enricher = f"analyst@{username}"
    conn.execute(
        delete(labels).where(labels.c.post_id == post_id, labels.c.name == name, labels.c.enricher.like("analyst@%"))
    )
    conn.execute(insert(labels).values(post_id=post_id, name=name, value=value, score=1.0, enricher=enricher))
    conn.execute(update(posts).where(posts.c.id == post_id).values({column: value}))
    change = {"name": name, "from": before[0], "to": value, "enricher": enricher}
    audit.record(conn, username, "label.change", f"post:{post_id}", change)
    return {**change, "changed": True}
