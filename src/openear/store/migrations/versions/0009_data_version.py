"""``data_version``: a counter that every change to posts, clusters or guard counts moves, kept by triggers.

The dashboard caches its aggregates per period and reuses them while this counter has not moved, so a cached
figure never outlives the write that changes it, whatever wrote (batch upsert, override, deletion, purge, restore).

Revision ID: 0009_data_version
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_data_version"
down_revision = "0001"
branch_labels = None
depends_on = None

WATCHED = ("posts", "clusters", "guard_counts")
# An upsert, not a bare UPDATE: a table emptied by hand (or by a test's reset) starts counting again.
BUMP = "INSERT INTO data_version (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = data_version.n + 1"


def upgrade() -> None:
    op.create_table(
        "data_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO data_version (id, n) VALUES (1, 0)")
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE FUNCTION openear_data_version_bump() RETURNS trigger LANGUAGE plpgsql AS $oe$ BEGIN "
            f"{BUMP}; RETURN NULL; END $oe$"
        )
        for table in WATCHED:
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_data_version AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION openear_data_version_bump()"
            )
    else:  # SQLite has row triggers only: one cheap update of a one-row table per changed row.
        for table in WATCHED:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_data_version_{event.lower()} AFTER {event} ON {table} BEGIN {BUMP}; END"
                )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for table in WATCHED:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS openear_data_version_bump()")
    else:
        for table in WATCHED:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version_{event}")
    op.drop_table("data_version")
