"""`akd serve` decides its settings from its options and tells its children explicitly."""

from __future__ import annotations

import argparse
import os

from akd_tools.serve import Supervisor, add_serve_arguments, serve_settings


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_win_over_the_environment_which_is_left_untouched(tmp_path, monkeypatch):
    monkeypatch.setenv("AKD_PORT", "9999")
    monkeypatch.setenv("AKD_MAX_ATTEMPTS", "7")  # not an option: read from the environment
    before = dict(os.environ)
    data = tmp_path / "d"
    settings = serve_settings(_args("--data-dir", str(data), "--port", "8123", "--host", "::1"))
    assert (settings.data_dir, settings.port, settings.host) == (data.resolve(), 8123, "::1")
    assert settings.max_attempts == 7
    assert dict(os.environ) == before  # nothing written to steer the children


def test_port_0_picks_a_free_port_once_for_every_part(tmp_path):
    settings = serve_settings(_args("--data-dir", str(tmp_path), "--port", "0"))
    assert settings.port > 0
    env = Supervisor(settings)._env("redis://broker.example:6379/0")
    assert env["AKD_PORT"] == str(settings.port)


def test_the_children_get_the_run_settings_in_their_own_environment(tmp_path):
    before = dict(os.environ)
    settings = serve_settings(_args("--data-dir", str(tmp_path / "d"), "--port", "8123"))
    env = Supervisor(settings)._env("redis+socket:///tmp/x.sock")
    assert env["AKD_DATA_DIR"] == str((tmp_path / "d").resolve())
    assert env["AKD_BROKER_URL"] == "redis+socket:///tmp/x.sock"
    assert (env["AKD_HOST"], env["AKD_PORT"]) == ("127.0.0.1", "8123")
    assert dict(os.environ) == before
