"""Temp files of logit and token writes: kept while their writer lives, deleted once it is gone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from akd_core.cache import LogitCache
from akd_core.cache_entries import list_entries
from akd_core.cache_lease import lease_path
from akd_core.cache_prune import prune

# A writer killed mid-write: it takes the entry's lease and writes part of its temp file,
# then dies without any cleanup (os._exit), as SIGKILL or the OOM killer would leave it.
WRITER = """
import os, sys
from pathlib import Path
from akd_core.cache_lease import write_leased

def write(tmp):
    tmp.write_bytes(b"\\0" * 4096)
    print(tmp, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    os._exit(9)

write_leased(Path(sys.argv[1]), write)
"""


@pytest.mark.parametrize("entry", ["k.safetensors", "tokens/k.npz"])
def test_a_killed_writers_temp_file_is_deleted_and_a_live_ones_kept(tmp_path, entry):
    target = tmp_path / entry
    LogitCache(tmp_path).put("other", {"val": np.zeros((4, 2), np.float32)})  # not touched
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.parent == target.parent and tmp.name.startswith(f".{target.name}.")
        assert prune(tmp_path, 0).evicted[0].key == "other"
        assert tmp.stat().st_size == 4096  # the live write is left alone, even under a 0 cap
    finally:
        proc.communicate("", timeout=120)
    assert proc.returncode == 9 and tmp.exists()  # dead, and nothing cleaned up after it
    assert prune(tmp_path, 10**9).evicted == []  # under the cap: cleaned all the same
    assert not tmp.exists() and not target.exists() and not lease_path(target).exists()
    assert list_entries(tmp_path) == []


def test_a_file_that_only_looks_like_a_temp_is_no_writers(tmp_path):
    (tmp_path / ".notes").write_text("mine")  # no entry suffix: not a cache writer's
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / ".k.safetensors.x1").write_text("x")  # a logit name in tokens/
    prune(tmp_path, 0)
    assert (tmp_path / ".notes").exists() and (tmp_path / "tokens" / ".k.safetensors.x1").exists()


def test_logit_and_token_writes_hold_their_entrys_lease_while_the_temp_exists(
    tmp_path, monkeypatch
):
    import akd_core.cache
    from akd_core.cache_lease import in_use
    from akd_core.spec import DatasetSpec
    from akd_core.text import data as text_data
    from akd_core.text.rows import TextRows

    held: list[bool] = []  # was the entry leased while its temp file was written?
    logits, tokens = tmp_path / "k.safetensors", tmp_path / "tokens" / "k.npz"
    save_file, savez = akd_core.cache.save_file, np.savez

    def spy_save_file(arrays, tmp):
        held.append(in_use(logits))
        return save_file(arrays, tmp)

    def spy_savez(fh, **arrays):
        held.append(in_use(tokens))
        return savez(fh, **arrays)

    monkeypatch.setattr(akd_core.cache, "save_file", spy_save_file)
    LogitCache(tmp_path).put("k", {"val": np.zeros((4, 2), np.float32)})
    monkeypatch.setattr(text_data.np, "savez", spy_savez)
    monkeypatch.setattr(text_data, "encode", lambda _t, texts, _p, _n: np.zeros((len(texts), 2, 3)))
    rows = {s: TextRows("t.csv", ["a", "b"], None, ["x", "y"], None, [2, 3])
            for s in ("train", "val", "test")}  # fmt: skip
    text_data._cached_tokens(tmp_path, "k", rows, None, DatasetSpec(source="file:t.csv"))
    assert held == [True, True]  # an evictor or an orphan sweep would find them leased
    assert logits.exists() and tokens.exists() and not in_use(logits) and not in_use(tokens)
