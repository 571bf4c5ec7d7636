"""Exit codes of every `akd` command, one table a script can trust."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the job or run failed (or `akd serve` could not start)
EXIT_USAGE = 2  # bad input: arguments, the spec, a refused request (4xx)
EXIT_UNREACHABLE = 3  # the server did not answer
EXIT_INTERRUPTED = 130  # Ctrl-C or a cancel: 128 + SIGINT, as shells report it
