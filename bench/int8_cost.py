"""Seconds of the INT8 selection for a ResNet-8 student on digits, before/after, interleaved.

`select_int8` (both candidates quantized, each measured: accuracy on validation and test,
latency) on an untrained ResNet-8 (the cost does not depend on the weights), alternating

  before  static QDQ calibrated in runs of 32 samples, the input named by opening a session
  after   calibrated in as few runs as fit 4 MiB of input (one here), the name from the graph

in one process, so both see the same machine load; the wall-clock medians and minima are
printed, and the process CPU seconds (all threads: the work done, less sensitive to other
processes on a shared machine), and whether both write byte-identical static QDQ graphs.

    nice -n 19 .venv/bin/python bench/int8_cost.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import onnx
import torch

import akd_core.int8 as int8
from akd_core.data import load_dataset
from akd_core.export import export_checked
from akd_core.int8 import Split, measure_file, quantize_static_qdq
from akd_core.int8_select import Int8Inputs, select_int8
from akd_core.latency import measure_latency
from akd_core.models import build_model
from akd_core.models.input_layer import with_input_layer
from akd_core.models.onnx_runner import make_session
from akd_core.spec import parse_spec


@contextmanager
def before() -> Iterator[None]:
    """The code path before: runs of 32 calibration samples, a session to name the input."""
    saved = int8._CALIBRATION_BATCH_BYTES, int8.data_input_name
    int8._CALIBRATION_BATCH_BYTES = 32 * 256  # 32 digits samples (1x8x8 float32) per run
    int8.data_input_name = lambda path: make_session(path).get_inputs()[0].name
    try:
        yield
    finally:
        int8._CALIBRATION_BATCH_BYTES, int8.data_input_name = saved


def main() -> None:
    """Print the before/after seconds of select_int8 and of one static QDQ quantization."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = parse_spec({"teacher": {"source": "upload:0123abcd", "format": "onnx"},
                       "student": {"arch": "resnet8"}, "dataset": {"source": "builtin:digits"}})  # fmt: skip
    ds = load_dataset(spec.dataset, None, spec.seed)
    torch.manual_seed(0)
    model = with_input_layer(build_model("resnet8", ds.input_shape, ds.num_classes), ds.x_train)
    with tempfile.TemporaryDirectory() as tmp:
        src = export_checked(model, ds.input_shape, Path(tmp) / "student.onnx", {}).path
        val, test = Split(ds.x_val, ds.y_val), Split(ds.x_test, ds.y_test)
        shape = list(ds.input_shape)
        fp32 = measure_file(src, val, test, shape, measure_latency)
        pick = np.sort(np.random.default_rng(0).permutation(len(ds.x_train))[:256])
        calibration = np.ascontiguousarray(ds.x_train[pick])
        inputs = Int8Inputs(val, test, calibration, shape)
        times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
        graphs = {}
        for _ in range(args.rounds + 1):  # the first round warms imports and kernels up
            for name in ("before", "after"):
                with before() if name == "before" else nullcontext():
                    t0, c0 = time.perf_counter(), time.process_time()
                    qdq = quantize_static_qdq(src, Path(tmp) / f"{name}.onnx", calibration)
                    t1, c1 = time.perf_counter(), time.process_time()
                    select_int8(src, fp32, inputs, 0.01, Path(tmp) / "int8.onnx")
                    t2, c2 = time.perf_counter(), time.process_time()
                graphs[name] = onnx.load(str(qdq)).graph.SerializeToString()
                for key, value in (
                    ("static QDQ", t1 - t0),
                    ("static QDQ CPU", c1 - c0),
                    ("select_int8", t2 - t1),
                    ("select_int8 CPU", c2 - c1),
                ):
                    times[name].setdefault(key, []).append(value)  # fmt: skip
    print(f"ResNet-8 on digits, {args.rounds} rounds interleaved (first round not counted)")
    print("| path | static QDQ wall median / min | CPU median | select_int8 wall median / min "
          "| CPU median |\n|---|---|---|---|---|")  # fmt: skip
    for name, t in times.items():
        cells = [f"{statistics.median(v[1:]):.3f}" + ("" if "CPU" in k else f" / {min(v[1:]):.3f}")
                 for k, v in t.items()]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("static QDQ graphs byte-identical:", graphs["before"] == graphs["after"])


if __name__ == "__main__":
    main()
