"""`akd cache ls` and `akd cache prune`: what the job cache holds, and keeping it under its cap."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from akd_core.cache_entries import list_entries
from akd_core.cache_prune import gib_to_bytes, human_bytes, prune
from akd_core.cli import max_gb_type
from akd_core.errors import AKDError
from akd_core.exit_codes import EXIT_OK
from akd_tools.tables import age_text, print_table

KEY_SHOWN = 12  # characters of a key in the listing (enough to tell entries apart)


class SettingsError(AKDError):
    """The service's settings (AKD_* variables) do not validate; the message says which.

    An AKDError: `akd` prints it as one line and exits with the usage code.
    """


def _settings() -> Any:
    """The service's Settings, with a validation error turned into one readable line."""
    from pydantic import ValidationError

    from akd_service.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SettingsError(str(err["msg"]).removeprefix("Value error, ")) from exc


def _cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir) if args.cache_dir else _settings().cache


def cmd_cache_ls(args: argparse.Namespace) -> int:
    """List the cache's entries, least recently used first."""
    root = _cache_dir(args)
    entries = list_entries(root)
    if not entries:
        print(f"the cache {root} is empty")
        return EXIT_OK
    now = datetime.now(UTC)
    rows = [("KIND", "KEY", "SIZE", "LAST USED", "IN USE")]
    for e in entries:
        used = datetime.fromtimestamp(e.last_used, UTC).isoformat()
        rows.append(
            (
                e.kind,
                e.key[:KEY_SHOWN],
                human_bytes(e.size),
                f"{age_text(used, now)} ago",
                "yes" if e.in_use() else "no",
            )
        )
    print_table(rows)
    noun = "entry" if len(entries) == 1 else "entries"
    print(f"{len(entries)} {noun}, {human_bytes(sum(e.size for e in entries))} in {root}")
    return EXIT_OK


def cmd_cache_prune(args: argparse.Namespace) -> int:
    """Remove least recently used entries (not in use) until the cache fits its cap."""
    root = _cache_dir(args)
    max_gb = args.max_gb if args.max_gb is not None else _settings().cache_max_gb
    max_bytes = gib_to_bytes(max_gb)
    if max_bytes is None:
        print("the cache has no cap (AKD_CACHE_MAX_GB=unlimited); give --max-gb to prune")
        return EXIT_OK
    result = prune(root, max_bytes)
    for line in result.lines():
        print(line)
    if not result.evicted:
        print(
            f"cache: {human_bytes(result.total_before)} within the cap of "
            f"{human_bytes(max_bytes)}; freed 0 B"
            if result.total_before <= max_bytes
            else "cache: freed 0 B"
        )
    return EXIT_OK


def add_cache_commands(sub: Any) -> None:
    """`akd cache ls|prune` under the `akd` subcommands `sub`."""
    cache = sub.add_parser("cache", help="list or prune the job cache (on the worker machine)")
    actions = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    where = "cache folder (default: the service's, AKD_CACHE_DIR or AKD_DATA_DIR/cache)"
    p = actions.add_parser("ls", help="list entries: kind, key, size, last used, in use")
    p.add_argument("--cache-dir", type=Path, help=where)
    p.set_defaults(func=cmd_cache_ls)
    p = actions.add_parser("prune", help="remove least recently used entries over the cap")
    p.add_argument("--cache-dir", type=Path, help=where)
    p.add_argument(
        "--max-gb", type=max_gb_type("--max-gb"), help="cap in GiB (default: AKD_CACHE_MAX_GB, 50)"
    )
    p.set_defaults(func=cmd_cache_prune)
