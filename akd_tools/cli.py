"""The `akd` command line: run a distillation here, serve the API, or drive a server."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from akd_core.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from akd_core.progress_bar import ProgressBar
from akd_service.db.states import SUCCEEDED
from akd_tools.tables import job_row, print_table

if TYPE_CHECKING:
    from akd_service.config import Settings


def _client(args: argparse.Namespace) -> Any:
    from akd_tools.client import AKDClient

    return AKDClient(args.url, args.key)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _job_exit(job: dict[str, Any]) -> int:
    state = job.get("state")
    if state == SUCCEEDED:
        return EXIT_OK
    reason = job.get("failure_reason")
    print(f"job {job.get('id')} {state}" + (f": {reason}" if reason else ""), file=sys.stderr)
    return EXIT_FAILED


_UNREACHABLE_HINT = (
    "start one here with `akd serve` (http://127.0.0.1:8000), or name yours with --url or AKD_URL"
)


# -- subcommands ----------------------------------------------------------------------------
def cmd_submit(args: argparse.Namespace) -> int:
    """Upload the spec's files, submit it, and with --wait follow it and fetch the outputs."""
    from akd_core.errors import SpecError

    try:
        spec = json.loads(Path(args.spec).read_text())
    except OSError as exc:
        raise SpecError(f"cannot read spec file {args.spec}: {exc.strerror}", field="spec") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"{args.spec} is not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(spec, dict):
        raise SpecError(f"{args.spec} must hold a JSON object (the job spec)", field="spec")
    with _client(args) as client:
        job = client.submit(spec, base_dir=Path(args.spec).resolve().parent)
        print(f"submitted job {job['id']}", flush=True)
        if not args.wait:
            print(job["id"])
            return EXIT_OK
        bar = ProgressBar(enabled=not args.quiet)
        try:
            job = client.wait(job["id"], on_event=bar)
        finally:
            bar.close()
        code = _job_exit(job)
        if code == EXIT_OK:
            out = args.out or Path("runs") / job["id"]
            paths = client.download_all(job["id"], out)
            print(f"job {job['id']} succeeded; {len(paths)} artifact(s) in {out}")
            _print_outcome(job, out)
        return code


def _print_outcome(job: dict[str, Any], out: Path) -> None:
    """The summary `akd distill` prints (results, verdict, resolution) from the downloaded
    report.json; the job's metrics as JSON where that report cannot be read."""
    from akd_core.cli import summary_text

    try:
        print(summary_text(json.loads((out / "report.json").read_text()), out))
        return
    except (OSError, ValueError, KeyError, TypeError):  # not downloaded, or another layout
        pass
    metrics = job.get("metrics") or {}
    if metrics:
        _print_json(metrics)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the job's status document."""
    with _client(args) as client:
        _print_json(client.status(args.id))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    """Ask a job to stop."""
    with _client(args) as client:
        client.cancel(args.id)
        print(f"job {args.id}: {client.status(args.id).get('state')}")
    return EXIT_OK


def cmd_download(args: argparse.Namespace) -> int:
    """Download one artifact, or all of them."""
    with _client(args) as client:
        out = args.out or Path("runs") / args.id
        if args.name:
            # --out names a folder, existing or not: created first, so that the client puts
            # the artifact inside it (a missing path would be taken for the file's own name).
            created = _missing_folders(out)
            out.mkdir(parents=True, exist_ok=True)
            try:
                paths = [client.download(args.id, args.name, out)]
            except BaseException:
                # An unknown job or artifact leaves no empty folders behind.
                for folder in created:
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                raise
        else:
            paths = client.download_all(args.id, out)
    for p in paths:
        print(p)
    return EXIT_OK


def _missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def cmd_jobs(args: argparse.Namespace) -> int:
    """List the caller's jobs, newest first."""
    params = {"limit": args.limit} | ({"cursor": args.cursor} if args.cursor else {})
    with _client(args) as client:
        page = client.jobs(**params)
    items = page.get("items", page if isinstance(page, list) else [])
    if not items:
        print("no jobs yet; submit one with: akd submit SPEC.json")
    else:
        now = datetime.now(UTC)
        rows: list[tuple[str, ...]] = [("ID", "STATE", "PROGRESS", "ACCURACY", "AGE")]
        rows += [job_row(job, now) for job in items]
        print_table(rows)
    if isinstance(page, dict) and page.get("next"):
        print(f"more: akd jobs --cursor {page['next']}")
    return EXIT_OK


def _server_settings() -> Settings:
    """The server's settings (from its environment), its database migrated to the latest."""
    from akd_service.config import Settings
    from akd_service.db.migrate import upgrade

    settings = Settings()
    upgrade(settings)
    return settings


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create an API key in the server's database (run on the server) and print it once."""
    from akd_service.db.session import session_scope
    from akd_service.keys import create_key

    with session_scope(_server_settings()) as session:
        key_id, plaintext = create_key(session, args.name)
    print(f"key id {key_id} ({args.name}); the key is shown only now:", file=sys.stderr)
    print(plaintext)
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List the server's API keys: id, name, created, revoked (never the key itself)."""
    from akd_service.db.session import session_scope
    from akd_service.keys import list_keys

    with session_scope(_server_settings()) as session:
        rows = [
            {
                "id": key.id,
                "name": key.name,
                "created": key.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "revoked": bool(key.revoked),
            }
            for key in list_keys(session)
        ]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no API keys; create one with: akd keys create NAME")
        return EXIT_OK
    table = [("ID", "NAME", "CREATED", "REVOKED")]
    table += [
        (str(r["id"]), str(r["name"]), str(r["created"]), "yes" if r["revoked"] else "no")
        for r in rows
    ]
    print_table(table)
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke an API key by id: requests with it are refused from now on."""
    from akd_service.db.session import session_scope
    from akd_service.keys import revoke_key

    with session_scope(_server_settings()) as session:
        found = revoke_key(session, args.id)
    if not found:
        print(f"error: there is no API key {args.id!r}; see akd keys list", file=sys.stderr)
        return EXIT_USAGE
    print(f"revoked key {args.id}", file=sys.stderr)
    return EXIT_OK


def cmd_distill(args: argparse.Namespace) -> int:
    """Run a whole distillation on this machine (no server)."""
    from akd_core.cli import distill_main

    return int(distill_main(args))


def cmd_teacher(args: argparse.Namespace) -> int:
    """Train a reference teacher (CNN on digits by default) and save it as ONNX."""
    from akd_tools.teacher import teacher_main

    return teacher_main(args)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API, a worker and an embedded Redis until Ctrl-C."""
    from akd_tools.serve import serve_main

    return serve_main(args)


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The `akd` argument parser with every subcommand."""
    from akd_core.cli import add_distill_arguments
    from akd_tools.cache_cmd import add_cache_commands
    from akd_tools.serve import add_serve_arguments
    from akd_tools.teacher import add_teacher_arguments

    parser = argparse.ArgumentParser(prog="akd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], remote: bool = True) -> Any:
        p = sub.add_parser(name, help=(func.__doc__ or "").strip().rstrip("."))
        p.set_defaults(func=func)
        if remote:
            p.add_argument("--url", help="server URL (default $AKD_URL or http://127.0.0.1:8000)")
            p.add_argument("--key", help="API key (default $AKD_API_KEY)")
        return p

    add_distill_arguments(add("distill", cmd_distill, remote=False))
    add_teacher_arguments(add("teacher", cmd_teacher, remote=False))
    add_serve_arguments(add("serve", cmd_serve, remote=False))
    p = add("submit", cmd_submit)
    p.add_argument("spec", type=Path, help="job spec (JSON); file: sources are uploaded")
    p.add_argument("--wait", action="store_true", help="follow progress, then download outputs")
    p.add_argument("--out", type=Path, help="where --wait puts the artifacts (runs/<job id>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add("status", cmd_status).add_argument("id")
    add("cancel", cmd_cancel).add_argument("id")
    p = add("download", cmd_download)
    p.add_argument("id")
    p.add_argument("name", nargs="?", help="one artifact (default: all)")
    p.add_argument("--out", type=Path, help="folder (default runs/<job id>)")
    p = add("jobs", cmd_jobs)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor", help="the next page's cursor from a previous listing")
    keys = sub.add_parser("keys", help="manage API keys (on the server machine)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys_sub.add_parser("create", help="create a key and print it once")
    p.add_argument("name", help="who the key is for")
    p.set_defaults(func=cmd_keys_create)
    p = keys_sub.add_parser("list", help="list keys: id, name, created, revoked")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_keys_list)
    p = keys_sub.add_parser("revoke", help="revoke a key by id")
    p.add_argument("id", help="the key id (from akd keys list)")
    p.set_defaults(func=cmd_keys_revoke)
    add_cache_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `akd` command; returns the exit code."""
    from akd_core.errors import AKDError
    from akd_tools.client import AKDClientError, AKDUnreachable

    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that has gone shows here, in the handler below, not at exit
        return code
    except AKDUnreachable as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        print(f"is the server running? {_UNREACHABLE_HINT}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except AKDClientError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE if 400 <= exc.status < 500 else EXIT_FAILED
    except AKDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`akd status ID | head`): stop quietly, as Unix tools do.
        _stdout_to_devnull()
        return EXIT_OK


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that the interpreter's flush at exit cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured output)
        return
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


if __name__ == "__main__":
    sys.exit(main())
