"""app.api.nodelay: connections accepted on a socket bound as `uvicorn --workers` binds it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from uvicorn.config import Config
from uvicorn.server import ServerState

from app.api.nodelay import UVICORN_HTTP, Protocol, set_nodelay


def _nodelay_of_accepted(make: Callable[[], asyncio.Protocol]) -> int:
    """TCP_NODELAY of a connection asyncio accepted on a proto-0 socket (uvicorn's way)."""

    async def main() -> int:
        made: list[asyncio.Protocol] = []

        def factory() -> asyncio.Protocol:
            made.append(make())
            return made[-1]

        listener = socket.socket(socket.AF_INET)  # proto 0, as uvicorn.Config.bind_socket
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.get_running_loop().create_server(factory, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            while not made or getattr(made[0], "transport", None) is None:
                await asyncio.sleep(0.01)
            transport = made[0].transport  # type: ignore[attr-defined]
            value = transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            transport.close()
            writer.close()
        return int(value)

    return asyncio.run(main())


class _Plain(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


class _Fixed(_Plain):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        set_nodelay(transport)
        super().connection_made(transport)


def test_asyncio_leaves_nagle_on_for_uvicorns_worker_socket():
    # The cause of the ~48 ms p50 with --workers 2: if asyncio ever sets it, this can go.
    assert _nodelay_of_accepted(_Plain) == 0


def test_set_nodelay_turns_nagle_off_on_such_a_connection():
    assert _nodelay_of_accepted(_Fixed) != 0


def test_uvicorn_loads_the_protocol_and_it_turns_nagle_off():
    async def app(scope, receive, send):  # never called: no request is sent
        raise AssertionError

    config = Config(app=app, http=UVICORN_HTTP, loop="asyncio", lifespan="off")
    config.load()
    assert config.http_protocol_class is Protocol
    state = ServerState()
    assert _nodelay_of_accepted(lambda: Protocol(config, state, {})) != 0
