"""`akd serve --workers N` on a GPU host: each worker child sees one card of its own."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from akd_tools.serve import Supervisor, add_serve_arguments, serve_main, serve_settings

ROOT = Path(__file__).resolve().parents[2]

# What the Celery worker that `akd serve` starts does with its environment: the real entry
# point (worker.celery_app reads AKD_* there), then a prefork pool of 2 whose children run
# Celery's own initializer and report the card they see and whether torch was loaded.
_CHILDREN = textwrap.dedent(
    """
    import json, os, sys, time
    import billiard
    from billiard.process import current_process
    from celery.concurrency.prefork import process_initializer
    from worker.celery_app import celery_app

    def report(out):
        process_initializer(celery_app, "serve-test@host")
        seen = [os.environ.get("CUDA_VISIBLE_DEVICES"), "torch" in sys.modules]
        with open(os.path.join(out, str(current_process().index)), "w") as f:
            json.dump(seen, f)

    out = sys.argv[1]
    pool = billiard.Pool(2, initializer=report, initargs=(out,))
    deadline = time.monotonic() + 60
    while len(os.listdir(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pool.terminate()
    """
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_serve_workers_2_children_each_see_their_own_card_before_torch(tmp_path):
    args = _args("--data-dir", str(tmp_path / "d"), "--workers", "2", "--gpus", "2,3")
    env = Supervisor(serve_settings(args), workers=2)._env("memory://")
    assert env["AKD_GPUS"] == "2,3"
    out = tmp_path / "seen"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-c", _CHILDREN, str(out)], env=env, cwd=ROOT, check=True, timeout=120
    )
    seen = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    assert seen == {"0": ["2", False], "1": ["3", False]}


def test_a_malformed_gpu_list_is_refused_naming_the_field(tmp_path, capsys):
    code = serve_main(_args("--data-dir", str(tmp_path), "--gpus", "0;1"))
    assert code != 0
    assert "gpus" in capsys.readouterr().err
