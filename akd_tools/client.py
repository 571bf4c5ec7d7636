"""A small Python client of the AKD REST API (used by the `akd` command line too)."""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from akd_core.spec import DATASET_EXTENSIONS, TEACHER_EXTENSIONS
from akd_service.db.states import FINAL_STATES

DEFAULT_URL = "http://127.0.0.1:8000"
# Spec sections whose `source` may name a local file to upload, with extension -> format maps.
_FILE_SOURCES: dict[str, dict[str, str]] = {
    "teacher": dict(TEACHER_EXTENSIONS),
    "dataset": dict(DATASET_EXTENSIONS),
}


class AKDClientError(Exception):
    """The server refused a request; `problem` is its problem+json body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        """The sentence a person reads: title and detail of the problem."""
        title = self.problem.get("title") or f"HTTP {self.status}"
        detail = self.problem.get("detail")
        if isinstance(detail, list | dict):  # e.g. a framework validation error list
            detail = json.dumps(detail)
        return f"{title}: {detail}" if detail else str(title)


class AKDUnreachable(AKDClientError):
    """The server could not be reached at all."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, {"title": "Server unreachable", "detail": f"{url}: {reason}"})


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".tar.gz" if name.endswith(".tar.gz") else path.suffix.lower()


class AKDClient:
    """Talks to one AKD server, with an optional API key (bearer token)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("AKD_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("AKD_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AKDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise AKDUnreachable(self.url, str(exc) or type(exc).__name__) from exc
        _raise_for_problem(resp)
        return resp

    # -- resources ------------------------------------------------------------------------
    def upload(self, path: str | Path) -> dict[str, Any]:
        """Upload one file (streamed); returns {"id", "sha256", "size"}."""
        p = Path(path)
        if not p.is_file():
            raise AKDClientError(400, {"title": "No such file", "detail": f"{p} is not a file"})
        with p.open("rb") as fh:
            return _object(self._request("POST", "/uploads", files={"file": (p.name, fh)}))

    def prepare_spec(self, spec: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
        """Validate the spec and its `file:` sources, then upload each and use `upload:` ids.

        Nothing is uploaded until the whole spec passes the job-spec model (the one the
        server validates with) and every local file exists. A folder (a transformers model,
        an image folder) is uploaded as a zip of its files; text data's `val_source` and
        `test_source` files are uploaded too.
        """
        from akd_tools.spec_files import local_files, zip_folder

        local = local_files(spec, base_dir or Path.cwd())
        out = copy.deepcopy(spec)
        with tempfile.TemporaryDirectory(prefix="akd-submit-") as tmp:
            for (section, field), path in local.items():
                part = out[section]
                # The upload id hides the extension, so pin the format it implies now.
                fmt = _FILE_SOURCES[section].get(_suffix(path))
                if field == "source" and part.get("format") is None and fmt is not None:
                    part["format"] = fmt
                # A folder (transformers model, image folder) travels as a zip.
                sent = zip_folder(path, Path(tmp) / f"{path.name}.zip") if path.is_dir() else path
                part[field] = f"upload:{self.upload(sent)['id']}"
        return out

    def submit(self, spec: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
        """Upload the spec's local files, create the job, and return its status document."""
        body = self.prepare_spec(spec, base_dir)
        resp = self._request("POST", "/jobs", json=body)
        job = _object(resp)
        if "id" not in job and resp.headers.get("location"):
            job["id"] = resp.headers["location"].rstrip("/").rsplit("/", 1)[-1]
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's state, phase, progress, metrics and artifacts."""
        return _object(self._request("GET", f"/jobs/{job_id}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop; it ends as cancelled within one training step."""
        resp = self._request("POST", f"/jobs/{job_id}/cancel")
        return _object(resp) if resp.content else {}

    def jobs(self, **params: Any) -> dict[str, Any]:
        """One page of the caller's jobs, newest first (params: the API's paging parameters)."""
        return _object(self._request("GET", "/jobs", params=params))

    def events(
        self, job_id: str, last_event_id: int | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The job's progress events as dicts, replayed after last_event_id, until the job ends.

        Each dict holds the event's fields plus "id" (the SSE id) and "event" (its kind).
        A dropped connection is resumed from the last id seen.
        """
        last = last_event_id
        for _ in range(100):  # reconnects, bounded so a flapping server cannot spin forever
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            try:
                with self._http.stream(
                    "GET",
                    f"/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(60.0, read=None),
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        _raise_for_problem(resp)
                    for event in parse_sse(resp.iter_lines()):
                        if event.get("id") is not None:
                            last = event["id"]
                        yield event
                return
            except (httpx.RemoteProtocolError, httpx.ReadError):
                time.sleep(0.5)
            except httpx.TransportError as exc:
                raise AKDUnreachable(self.url, str(exc) or type(exc).__name__) from exc

    def wait(
        self,
        job_id: str,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Follow the job's events until it ends; return its final status document."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
            if deadline is not None and time.monotonic() > deadline:
                break
        # The stream ends with the job, but poll briefly in case the row lags the last event.
        while True:
            job = self.status(job_id)
            if job.get("state") in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.get('state')} after {timeout_s} s")
            time.sleep(0.5)

    def download(self, job_id: str, name: str, dest: str | Path) -> Path:
        """Stream one artifact to dest (a file path or a folder), written atomically."""
        dest = Path(dest)
        target = dest / check_artifact_name(name) if dest.is_dir() else dest
        if target.is_dir():
            # Never replace a folder (a run's outputs, say) with one artifact's bytes.
            raise AKDClientError(
                409,
                {
                    "title": "Destination is a folder",
                    "detail": f"{target.absolute()} is a folder; name a file path or the "
                    "folder to download into",
                },
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        try:
            with self._http.stream("GET", f"/jobs/{job_id}/artifacts/{name}") as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for_problem(resp)
                with tmp.open("wb") as fh:
                    for chunk in resp.iter_bytes(1 << 20):
                        fh.write(chunk)
        except httpx.TransportError as exc:
            tmp.unlink(missing_ok=True)
            raise AKDUnreachable(self.url, str(exc) or type(exc).__name__) from exc
        tmp.replace(target)
        return target

    def download_all(self, job_id: str, out_dir: str | Path) -> list[Path]:
        """Download every artifact the job lists into out_dir."""
        out = Path(out_dir)
        names = self.status(job_id).get("artifacts") or []
        if not isinstance(names, list):
            names = [names]  # refused below: not a file name
        # The names come from the server: each must be a plain file name, so that a server
        # (or anything between) cannot make the client write outside out_dir.
        for name in names:
            check_artifact_name(name)
        out.mkdir(parents=True, exist_ok=True)
        return [self.download(job_id, name, out / name) for name in names]


def check_artifact_name(name: object) -> str:
    """`name` when it is a plain file name; AKDClientError for a path, '..', '.' or empty."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or Path(name).is_absolute()
    ):
        raise AKDClientError(
            502,
            {
                "title": "Unsafe artifact name",
                "detail": f"the server listed the artifact name {name!r}, which is not a "
                "plain file name; nothing was downloaded",
            },
        )
    return name


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse a server-sent event stream into dicts (comments and keep-alives skipped)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield _sse_event(fields, "\n".join(data))
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            data.append(value)
        elif key in ("id", "event"):
            fields[key] = value
    if data:
        yield _sse_event(fields, "\n".join(data))


def _sse_event(fields: dict[str, str], data: str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        payload = {"message": data}
    event: dict[str, Any] = payload if isinstance(payload, dict) else {"data": payload}
    if "id" in fields:
        event["id"] = int(fields["id"]) if fields["id"].isdigit() else fields["id"]
    event.setdefault("event", fields.get("event", "message"))
    return event


def _object(resp: httpx.Response) -> dict[str, Any]:
    """The JSON object a successful response carries (anything else is not this API)."""
    try:
        body = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise AKDClientError(
            resp.status_code,
            {"title": "Not an AKD server", "detail": f"expected a JSON object from {resp.url}"},
        )
    return body


def _raise_for_problem(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
        problem = body if isinstance(body, dict) else {"detail": body}
    except (json.JSONDecodeError, UnicodeDecodeError):
        problem = {"title": resp.reason_phrase, "detail": resp.text[:500]}
    problem.setdefault("status", resp.status_code)
    raise AKDClientError(resp.status_code, problem)
