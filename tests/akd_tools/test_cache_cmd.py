"""`akd cache ls|prune`, `akd distill --cache-max-gb` and AKD_CACHE_MAX_GB, as an operator uses them."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from pydantic import ValidationError

from akd_core.cache import LogitCache
from akd_core.cache_entries import list_entries
from akd_core.cache_lease import Lease, lease_path
from akd_core.data.store import DataStore
from akd_core.errors import TrainingError
from akd_core.exit_codes import EXIT_OK, EXIT_USAGE
from akd_service.config import GIB, Settings
from akd_tools.cli import main

DATA_KEY = "d" * 32
LOGIT_KEY = "0123456789abcdef" * 2


def _fill(root):
    """A 64 KiB data entry used an hour ago and a 4 KiB logit entry used now."""
    x = np.zeros((64, 1024), np.uint8)
    entry = DataStore(root / "data").put(DATA_KEY, {"main": (x, np.zeros(64))}, {"classes": []})
    t = time.time() - 3600
    for path in (entry.path, lease_path(entry.path)):
        os.utime(path, (t, t))
    LogitCache(root).put(LOGIT_KEY, {"val": np.zeros((1024, 1), np.float32)})


def test_ls_lists_kind_key_size_last_use_and_whether_a_job_holds_it(tmp_path, capsys):
    _fill(tmp_path)
    with Lease.shared(tmp_path / f"{LOGIT_KEY}.safetensors"):  # a running job reads it
        assert main(["cache", "ls", "--cache-dir", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["KIND", "KEY", "SIZE", "LAST", "USED", "IN", "USE"]
    assert out[1].split()[:4] == ["data", "d" * 12, "64.8", "KiB"]  # least recently used first
    assert out[1].split()[-3:] == ["1h", "ago", "no"]
    assert out[2].split()[:2] == ["logits", LOGIT_KEY[:12]] and out[2].split()[-1] == "yes"
    assert out[3].startswith("2 entries, ") and str(tmp_path) in out[3]


def test_ls_of_one_entry_says_entry(tmp_path, capsys):
    LogitCache(tmp_path).put(LOGIT_KEY, {"val": np.zeros((1024, 1), np.float32)})
    assert main(["cache", "ls", "--cache-dir", str(tmp_path)]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 entry, ")


def test_ls_of_an_empty_cache_says_so(tmp_path, capsys):
    assert main(["cache", "ls", "--cache-dir", str(tmp_path)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"the cache {tmp_path} is empty"


def test_prune_removes_the_least_recently_used_and_prints_what_it_freed(tmp_path, capsys):
    _fill(tmp_path)
    assert main(["cache", "prune", "--cache-dir", str(tmp_path), "--max-gb", "0.00005"]) == 0
    out = capsys.readouterr().out.splitlines()  # 0.00005 GiB = 52 KiB: the 64 KiB entry goes
    assert out[0] == f"evicted data {'d' * 12} (64.8 KiB, least recently used)"
    assert out[1].startswith("cache: freed 64.8 KiB; 4.") and "(cap 52.4 KiB)" in out[1]
    assert [e.kind for e in list_entries(tmp_path)] == ["logits"]
    assert main(["cache", "prune", "--cache-dir", str(tmp_path), "--max-gb", "1"]) == 0
    assert "within the cap of 1.0 GiB; freed 0 B" in capsys.readouterr().out


def test_prune_uses_the_services_folder_and_cap_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AKD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AKD_CACHE_MAX_GB", "0")
    _fill(tmp_path / "cache")
    assert main(["cache", "prune"]) == EXIT_OK
    assert list_entries(tmp_path / "cache") == []
    assert capsys.readouterr().out.count("evicted ") == 2
    monkeypatch.setenv("AKD_CACHE_MAX_GB", "unlimited")
    assert main(["cache", "prune"]) == EXIT_OK
    assert "no cap" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["-1", "abc", "nan", "inf"])
def test_a_bad_max_gb_is_refused_naming_the_flag(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "prune", "--cache-dir", str(tmp_path), f"--max-gb={bad}"])
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        f"--max-gb must be a size in GiB >= 0 (e.g. 50 or 0.5) or 'unlimited', not '{bad}'" in err
    )


@pytest.mark.parametrize("bad", ["-1", "abc"])
def test_a_bad_cache_max_gb_of_distill_is_refused_before_anything_runs(tmp_path, capsys, bad):
    (tmp_path / "spec.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        main(["distill", str(tmp_path / "spec.json"), f"--cache-max-gb={bad}"])
    assert exit_.value.code == EXIT_USAGE
    assert "--cache-max-gb must be a size in GiB >= 0" in capsys.readouterr().err


def test_a_bad_environment_cap_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AKD_CACHE_MAX_GB", "abc")
    assert main(["cache", "prune", "--cache-dir", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: AKD_CACHE_MAX_GB must be a size in GiB >= 0 (e.g. 50 or 0.5) or 'unlimited', "
        "not 'abc'"
    )
    with pytest.raises(ValidationError, match="AKD_CACHE_MAX_GB must be a size in GiB"):
        Settings(data_dir=tmp_path)


def test_the_setting_defaults_to_50_gib_and_reaches_the_jobs_limits(tmp_path, monkeypatch):
    assert Settings(data_dir=tmp_path).limits().cache_max_bytes == 50 * GIB
    monkeypatch.setenv("AKD_CACHE_MAX_GB", " 0.5 ")
    assert Settings(data_dir=tmp_path).limits().cache_max_bytes == GIB // 2
    monkeypatch.setenv("AKD_CACHE_MAX_GB", "Unlimited")
    assert Settings(data_dir=tmp_path).limits().cache_max_bytes is None


def test_distill_passes_the_cap_to_the_job_and_prunes_after_it(tmp_path, monkeypatch, capsys):
    import akd_core.pipeline

    seen = {}

    def fake_run_job(spec, out_dir, **kw):  # a job that leaves a 64 KiB data entry behind
        seen.update(kw)
        _fill(kw["cache_dir"])
        raise TrainingError("the run failed after caching")

    monkeypatch.setattr(akd_core.pipeline, "run_job", fake_run_job)
    (tmp_path / "t.onnx").write_bytes(b"x")
    spec = {"teacher": {"source": f"file:{tmp_path / 't.onnx'}", "format": "onnx"},
            "student": {"arch": "mlp"}, "dataset": {"source": "builtin:digits"}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    code = main(["distill", str(tmp_path / "spec.json"), "--out", str(tmp_path / "run"),
                 "--cache-max-gb", "0.00005", "--quiet"])  # fmt: skip
    assert code == 1  # the run's own failure, reported as before
    assert seen["limits"].cache_max_bytes == int(0.00005 * GIB)
    assert seen["cache_dir"] == tmp_path / "run" / ".cache"
    err = capsys.readouterr().err
    assert "error: the run failed after caching" in err
    assert f"evicted data {'d' * 12} (64.8 KiB, least recently used)" in err
    assert [e.kind for e in list_entries(tmp_path / "run" / ".cache")] == ["logits"]
