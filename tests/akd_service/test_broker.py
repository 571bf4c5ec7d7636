"""The embedded Redis that `akd serve` runs: starts, answers, stops, and survives long paths."""

from __future__ import annotations

import pytest

from akd_service.broker import EmbeddedRedis

pytestmark = pytest.mark.e2e  # a real redis-server process (about 0.1 s)


def test_embedded_redis_serves_kombu_on_a_unix_socket(tmp_path):
    from kombu import Connection

    deep = tmp_path / ("d" * 60) / ("e" * 60)  # beyond the kernel's unix-socket path limit
    server = EmbeddedRedis(deep / "redis.sock", deep / "redis")
    try:
        url = server.start()
        assert url.startswith("redis+socket://")
        with Connection(url) as conn:
            queue = conn.SimpleQueue("akd-test")
            queue.put({"job": "x"})
            assert queue.get(timeout=5).payload == {"job": "x"}
            queue.close()
    finally:
        server.stop()
    assert not server.ping()
