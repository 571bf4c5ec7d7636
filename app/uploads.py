"""Streaming multipart upload storage: bytes go to disk as they arrive, capped and hashed."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

if TYPE_CHECKING:  # the library declares its callback table for type checkers only
    from python_multipart.multipart import MultipartCallbacks

# Multipart framing (boundaries, part headers) on top of the file bytes: a Content-Length
# beyond cap + this slack cannot be an allowed upload, so it is refused before reading.
MULTIPART_SLACK = 64 * 1024
FILE_FIELD = "file"
PARTIAL_NAME = ".partial"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRejected(Exception):
    """The upload cannot be stored: status (413/415/400/422), a message and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = FILE_FIELD) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass
class ReceivedFile:
    """A file stored from a request body."""

    path: Path
    filename: str
    size: int
    sha256: str


def sanitize_filename(name: str | None) -> str:
    """A safe basename keeping the extension: no directories, no leading dots, no odd bytes."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE.sub("_", base).lstrip("._")[-200:]
    return base or "upload.bin"


@dataclass
class _Receiver:
    """Parser callbacks: writes the first file part to `partial`, counting and hashing."""

    partial: Path
    max_bytes: int
    size: int = 0
    filename: str | None = None
    too_large: bool = False
    done_file: bool = False
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    _fh: IO[bytes] | None = None
    _headers: dict[str, bytes] = field(default_factory=dict)
    _hname: bytes = b""
    _hvalue: bytes = b""
    _writing: bool = False

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._hname.decode("latin-1").lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        raw_name = params.get(b"filename")
        # Only the first part that carries a filename is stored; other form fields are ignored.
        if raw_name is not None and not self.done_file and self._fh is None:
            self.filename = raw_name.decode("utf-8", "replace")
            self._fh = self.partial.open("wb")
            self._writing = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing or self._fh is None or self.too_large:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.too_large = True
            return
        self._digest.update(chunk)
        self._fh.write(chunk)

    def on_part_end(self) -> None:
        if self._writing and self._fh is not None:
            self._fh.close()
            self._writing = False
            self.done_file = True

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def _boundary(request: Request) -> bytes:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRejected(
            415,
            "send the file as multipart/form-data with the file in a field named 'file' "
            "(e.g. curl -F file=@teacher.onnx)",
            field=None,
        )
    return boundary


def check_declared_length(request: Request, max_bytes: int) -> None:
    """Refuse at once a request whose Content-Length says it is over the cap."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK:
        raise UploadRejected(413, _too_large_message(int(declared), max_bytes))


def _too_large_message(size: int | None, max_bytes: int) -> str:
    got = f"is {size} bytes" if size is not None else f"passed {max_bytes} bytes"
    return (
        f"the upload {got} but this server accepts at most {max_bytes} bytes per file "
        "(setting AKD_MAX_UPLOAD_BYTES); send a smaller file"
    )


@dataclass(frozen=True)
class UploadTimeouts:
    """How long an upload may go without a byte (idle_s), and take in all (total_s)."""

    idle_s: float
    total_s: float


async def _timed_chunks(request: Request, timeouts: UploadTimeouts) -> AsyncIterator[bytes]:
    """The body's chunks; UploadRejected(408) when the client stalls or runs out of time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.total_s
    chunks = request.stream()
    while True:
        left = deadline - loop.time()
        wait = min(timeouts.idle_s, left)
        try:
            chunk = await asyncio.wait_for(anext(chunks), timeout=max(wait, 0.0))
        except StopAsyncIteration:
            return
        except TimeoutError:
            if wait < timeouts.idle_s:
                reason = f"took longer than {timeouts.total_s:g} s in all"
                setting = "AKD_UPLOAD_TOTAL_TIMEOUT_S"
            else:
                reason = f"sent nothing for {timeouts.idle_s:g} s"
                setting = "AKD_UPLOAD_IDLE_TIMEOUT_S"
            raise UploadRejected(
                408, f"the upload was aborted: the client {reason} (setting {setting})"
            ) from None
        yield chunk


async def receive_upload(
    request: Request, dest_dir: Path, max_bytes: int, timeouts: UploadTimeouts
) -> ReceivedFile:
    """Stream the request's file part into dest_dir; UploadRejected past the cap or if absent.

    The cap is checked on every chunk, so an oversized body is refused as soon as it passes
    the cap and the rest is never read. A client that stalls or is too slow gets a 408.
    On any failure dest_dir is removed.
    """
    check_declared_length(request, max_bytes)
    boundary = _boundary(request)
    dest_dir.mkdir(parents=True, exist_ok=False)
    receiver = _Receiver(partial=dest_dir / PARTIAL_NAME, max_bytes=max_bytes)
    callbacks: MultipartCallbacks = {
        "on_part_begin": receiver.on_part_begin,
        "on_header_field": receiver.on_header_field,
        "on_header_value": receiver.on_header_value,
        "on_header_end": receiver.on_header_end,
        "on_headers_finished": receiver.on_headers_finished,
        "on_part_data": receiver.on_part_data,
        "on_part_end": receiver.on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        async for chunk in _timed_chunks(request, timeouts):
            parser.write(chunk)
            if receiver.too_large:
                raise UploadRejected(413, _too_large_message(None, max_bytes))
            if receiver.done_file:
                break  # trailing form fields are not needed
        parser.finalize()
        if not receiver.done_file:
            raise UploadRejected(
                422,
                "the request has no complete file part: send it as multipart field 'file' "
                "with a filename (curl -F file=@path)",
            )
        final = dest_dir / sanitize_filename(receiver.filename)
        receiver.partial.rename(final)
        return ReceivedFile(final, final.name, receiver.size, receiver.sha256)
    except MultipartParseError as exc:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise UploadRejected(400, f"the multipart body is malformed ({exc})") from exc
    except ClientDisconnect as exc:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise UploadRejected(400, "the client disconnected before the upload finished") from exc
    except BaseException:
        # UploadRejected (408, 413, 422) and cancellation alike: no partial file stays.
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise
    finally:
        receiver.close()
