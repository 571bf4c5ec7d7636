"""64-bit upload sizes and event ids; reaper re-send bookkeeping; finished_at index.

uploads.size was a 32-bit INTEGER on PostgreSQL while uploads may be up to 2 GiB and more;
events.id (and its sequence) could run out after 2^31 events. SQLite's INTEGER is already
64-bit, so only PostgreSQL (and other servers) change type.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "sqlite":
        op.alter_column("uploads", "size", type_=sa.BigInteger(), existing_nullable=False)
        op.alter_column("events", "id", type_=sa.BigInteger(), existing_nullable=False)
    if dialect == "postgresql":
        # A serial column's sequence is typed too: it would stop at 2^31 - 1 otherwise.
        op.execute("ALTER SEQUENCE IF EXISTS events_id_seq AS bigint")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("resent_at", sa.DateTime(), nullable=True))
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("resent_at")
        batch.drop_column("resends")
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("ALTER SEQUENCE IF EXISTS events_id_seq AS integer")
    if dialect != "sqlite":
        op.alter_column("events", "id", type_=sa.Integer(), existing_nullable=False)
        op.alter_column("uploads", "size", type_=sa.Integer(), existing_nullable=False)
