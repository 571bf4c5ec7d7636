"""Strip server paths out of messages users read (failure reasons, event messages).

A failure_reason such as "cannot read /srv/akd/uploads/3f2a.../teacher.onnx" would tell any
API user where the server keeps its data. The user knows their upload by its id, and a job's
files by their names, so the paths are rewritten to those.
"""

from __future__ import annotations

import re
from pathlib import Path

from akd_service.config import Settings

# The rest of a path in a message: up to whitespace, a quote, or punctuation that ends it.
_REST = r"[^\s'\"`;,)]*"


def _forms(path: Path) -> list[str]:
    # As configured (maybe relative) and as resolved; longest first so the fuller one wins.
    forms = {str(path), str(path.resolve())}
    return sorted((f.rstrip("/") for f in forms if f not in ("", ".")), key=len, reverse=True)


def _rules(settings: Settings) -> list[tuple[re.Pattern[str], str]]:
    rules: list[tuple[re.Pattern[str], str]] = []
    for form in _forms(settings.uploads):
        # <uploads>/<id>/<file> -> upload:<id>
        rules.append((re.compile(re.escape(form) + r"/([0-9A-Za-z_-]+)" + _REST), r"upload:\1"))
    for form in _forms(settings.artifacts):
        # <artifacts>/<job>/<name> -> <name> (the name the user downloads it by)
        rules.append((re.compile(re.escape(form) + r"/[0-9A-Za-z_-]+/?"), ""))
    for root, label in ((settings.cache, "cache"), (settings.data_dir, "data")):
        for form in _forms(root):
            rules.append((re.compile(re.escape(form) + r"(?=/|\b|$)"), f"<{label}>"))
    return rules


def scrub_paths(message: str, settings: Settings) -> str:
    """The message with the server's data, upload, artifact and cache paths replaced."""
    for pattern, repl in _rules(settings):
        message = pattern.sub(repl, message)
    return message
