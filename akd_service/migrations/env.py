"""Alembic environment: uses the connection handed over by akd_service.db.migrate, else the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from akd_service.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds tables instead.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the given connection, or open one from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from akd_service.db.session import engine_for_url

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from akd_service.config import Settings

        url = Settings().db_url  # the alembic command line: the AKD_* environment
    with engine_for_url(url).begin() as conn:
        _run(conn)


def run_migrations_offline() -> None:
    """Emit SQL instead of running it (`alembic upgrade head --sql`)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
