"""The test PostgreSQL cluster says why it cannot start, so skips are never silent."""

from __future__ import annotations

import pytest

from tests import pg_cluster


def test_missing_server_binaries_name_the_package_to_install(monkeypatch):
    monkeypatch.setattr(pg_cluster.shutil, "which", lambda name: None)
    monkeypatch.setattr(pg_cluster.glob, "glob", lambda pattern: [])
    cluster = pg_cluster.PostgresCluster()
    with pytest.raises(pg_cluster.PostgresUnavailable, match="apt-get install postgresql"):
        cluster.start()
    cluster.stop()
    assert not cluster.dir.exists()


def test_the_cluster_serves_fresh_databases(postgres_url):
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar()
            == 0
        )
    engine.dispose()
