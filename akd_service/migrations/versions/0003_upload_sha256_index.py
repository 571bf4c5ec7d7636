"""Index uploads by (owner, sha256): POST /uploads returns the caller's identical upload.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not unique: databases from earlier releases may hold duplicates, which stay valid.
    op.create_index("ix_uploads_owner_sha256", "uploads", ["owner", "sha256"])


def downgrade() -> None:
    op.drop_index("ix_uploads_owner_sha256", "uploads")
