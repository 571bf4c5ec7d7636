"""A trivial ASGI app for `bench/api_load.py --floor`: what uvicorn itself costs per request.

Answers every request with 200 and a fixed JSON body of AKD_BENCH_FLOOR_BYTES bytes (the size
of a real status document), with no framework, routing, database or serialisation: the CPU
it takes per request under the same uvicorn options as `akd serve` is the floor that no
change to the API can go below.
"""

from __future__ import annotations

import os
from typing import Any

_SIZE = max(int(os.environ.get("AKD_BENCH_FLOOR_BYTES", "1500")), 16)
BODY = b'{"pad":"' + b"x" * (_SIZE - 10) + b'"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The whole app: one fixed response (run with `--lifespan off`)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
