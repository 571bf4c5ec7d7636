"""The sandbox's wire format: a length-prefixed JSON header, then raw numpy array bytes.

No pickle crosses the boundary in either direction: the child is untrusted, so the parent
reads only JSON and plain arrays of a few numeric dtypes, with caps on every size.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

import numpy as np

_LEN = struct.Struct("!I")
MAX_HEADER = 64 * 1024  # a header is a few hundred bytes of JSON
DTYPES = frozenset({"float16", "float32", "float64", "int32", "int64", "uint8", "bool"})
_CHUNK = 1 << 20


class ChannelClosed(Exception):
    """The other side closed its end (exited or died)."""


class ChannelTimeout(Exception):
    """The other side did not read or answer before the deadline."""


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


def _wait(fd: int, write: bool, deadline: float | None) -> None:
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise ChannelTimeout
    ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
    if not any(ready):
        raise ChannelTimeout


def _write_all(fd: int, data: memoryview, deadline: float | None) -> None:
    while data:
        _wait(fd, True, deadline)
        try:
            n = os.write(fd, data[:_CHUNK])
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChannelClosed from exc
        data = data[n:]


def _read_into(fd: int, buf: memoryview, deadline: float | None) -> None:
    got = 0
    while got < len(buf):
        _wait(fd, False, deadline)
        try:
            n = os.readv(fd, [buf[got:]])
        except BlockingIOError:
            continue
        if n == 0:
            raise ChannelClosed
        got += n


def send(
    fd: int,
    header: dict[str, Any],
    arrays: tuple[np.ndarray, ...] = (),
    deadline: float | None = None,
) -> None:
    """Write one message: header (JSON) + each array's raw bytes (C order)."""
    arrays = tuple(np.ascontiguousarray(a) for a in arrays)
    head = dict(header, arrays=[{"dtype": a.dtype.name, "shape": list(a.shape)} for a in arrays])
    blob = json.dumps(head).encode()
    _write_all(fd, memoryview(_LEN.pack(len(blob)) + blob), deadline)
    for a in arrays:
        if a.nbytes:
            _write_all(fd, a.reshape(-1).view(np.uint8).data, deadline)


def receive(
    fd: int, deadline: float | None = None, max_bytes: int = 1 << 31
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one message; refuse unknown dtypes and arrays past `max_bytes` in all."""
    raw = bytearray(_LEN.size)
    _read_into(fd, memoryview(raw), deadline)
    (size,) = _LEN.unpack(raw)
    if size > MAX_HEADER:
        raise ProtocolError(f"header of {size} bytes (at most {MAX_HEADER})")
    blob = bytearray(size)
    _read_into(fd, memoryview(blob), deadline)
    try:
        header = json.loads(blob)
        specs = [(str(s["dtype"]), [int(d) for d in s["shape"]]) for s in header.pop("arrays")]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError("malformed header") from exc
    if not isinstance(header, dict):
        raise ProtocolError("malformed header")
    total, arrays = 0, []
    for dtype, shape in specs:
        if dtype not in DTYPES or any(d < 0 for d in shape) or len(shape) > 8:
            raise ProtocolError(f"array of dtype {dtype} and shape {shape} is not accepted")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        total += nbytes
        if total > max_bytes:
            raise ProtocolError(f"arrays of {total} bytes (at most {max_bytes})")
        buf = bytearray(nbytes)
        _read_into(fd, memoryview(buf), deadline)
        arrays.append(np.frombuffer(buf, dtype=dtype).reshape(shape))
    return header, arrays
