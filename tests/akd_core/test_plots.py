"""The model card's PNGs: valid images holding the series the report says they hold."""

from __future__ import annotations

import copy
import math
import subprocess
import sys

from PIL import Image

from akd_core.plots import BOUNDARY, PLOT_FILES, write_plots
from tests.akd_core.test_report_md import HISTORY, REPORT

TITLES = {
    "loss": "train loss (phase 1: MSE, phase 2: CE)",
    "phi": "Phi(T) = 1 - (T - 1) / tau_max",
    "val": "validation accuracy per epoch",
    "size": "test accuracy against model size",
}


def _report() -> dict:
    r = copy.deepcopy(REPORT)
    r["teacher"]["size_bytes"] = 4_000_000
    return r


def test_three_valid_pngs_next_to_the_card(tmp_path):
    plots = write_plots(tmp_path, _report())
    assert [p.file for p in plots] == list(PLOT_FILES)
    assert PLOT_FILES == ("history.png", "val_accuracy.png", "accuracy_vs_size.png")
    for name in PLOT_FILES:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(tmp_path / name) as img:
            img.verify()  # a complete, uncorrupted PNG
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 200


def test_loss_and_phi_per_epoch_with_the_phase_boundary(tmp_path):
    drawn = write_plots(tmp_path, _report())[0].series
    assert set(drawn) == {TITLES["loss"], TITLES["phi"]}
    loss, phi = drawn[TITLES["loss"]], drawn[TITLES["phi"]]
    assert loss["train loss"] == [(1, 1.23456), (2, 0.98765), (3, 0.4321)]
    assert phi["Phi(T)"][:2] == [(1, 0.5), (2, 1.0)] and math.isnan(phi["Phi(T)"][2][1])
    # Two Phase 1 epochs, then Phase 2: the boundary is drawn between epochs 2 and 3.
    for ax in (loss, phi):
        assert {x for x, _ in ax[BOUNDARY]} == {2.5}
        assert len(ax) == 2


def test_validation_accuracy_of_every_method(tmp_path):
    drawn = write_plots(tmp_path, _report())[1].series[TITLES["val"]]
    assert set(drawn) == {"annealing", "kd", "student", BOUNDARY}
    for arm in ("annealing", "kd", "student"):
        assert drawn[arm] == [(1, 0.5), (2, 0.625), (3, 0.875)]


def test_accuracy_against_size_of_teacher_students_and_int8(tmp_path):
    drawn = write_plots(tmp_path, _report())[2].series[TITLES["size"]]
    assert drawn == {
        "teacher": [(4_000_000, 0.9123)],
        "student (annealing)": [(312_456, 0.8765)],
        "baseline: kd": [(312_456, 0.8512)],
        "baseline: student": [(312_456, 0.8034)],
        "INT8 (not shipped)": [(90_001, 0.8611)],
    }


def test_no_boundary_without_two_phases(tmp_path):
    r = _report()
    r["method"] = "student"
    r["history"] = [dict(h, phase=2, T=None, phi=None) for h in HISTORY]
    r["int8"] = None
    plots = write_plots(tmp_path, r)
    assert BOUNDARY not in plots[0].series[TITLES["loss"]]
    assert BOUNDARY not in plots[1].series[TITLES["val"]]
    assert "INT8 (not shipped)" not in plots[2].series[TITLES["size"]]


def _write_plots_in_a_fresh_interpreter() -> tuple[float, set[str]]:
    """Seconds write_plots takes in a new Python, and the top-level modules it had loaded."""
    code = (
        "import sys, tempfile, pathlib, time\n"
        "from akd_core.plots import write_plots\n"
        "from tests.akd_core.test_plots import _report\n"
        "t0 = time.perf_counter()\n"
        "write_plots(pathlib.Path(tempfile.mkdtemp()), _report())\n"
        "print(time.perf_counter() - t0)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seconds, modules = proc.stdout.splitlines()[-2:]
    return float(seconds), set(modules.split())


def test_plots_pull_no_torch():
    assert "torch" not in _write_plots_in_a_fresh_interpreter()[1]


def test_plots_cost_milliseconds_not_a_matplotlib_import():
    """The plots are part of every job's post-training cost: drawn with Pillow, no matplotlib."""
    seconds, modules = _write_plots_in_a_fresh_interpreter()
    assert "matplotlib" not in modules
    assert seconds < 3.0  # ~0.05-0.3 s; matplotlib took 1-6 s on this machine
