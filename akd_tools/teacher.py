"""`akd teacher`: train the reference teacher (a CNN on a dataset) and save it as ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path

from akd_core.cli import positive_int
from akd_core.exit_codes import EXIT_OK
from akd_core.progress_bar import ProgressBar


def add_teacher_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `akd teacher`."""
    parser.add_argument(
        "--out", type=Path, default=Path("teacher.onnx"), help="ONNX file (default teacher.onnx)"
    )
    parser.add_argument(
        "--dataset",
        default="builtin:digits",
        help="dataset.source to train on: builtin:<name> or file:<path> (default builtin:digits)",
    )
    parser.add_argument("--arch", default="cnn", help="teacher architecture (default cnn)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of the job's splits too")
    parser.add_argument(
        "--threads", type=positive_int, help="torch intra-op threads (default: every core)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def teacher_main(args: argparse.Namespace) -> int:
    """Train the teacher with a progress bar; print its test accuracy and where it was saved."""
    from akd_core.errors import SpecError
    from akd_core.reference_teacher import make_reference_teacher
    from akd_core.spec import DatasetSpec

    if args.epochs < 1:
        raise SpecError(f"--epochs must be at least 1, got {args.epochs}", field="epochs")
    dataset = DatasetSpec(source=args.dataset)
    print(f"training a {args.arch} teacher on {args.dataset} for {args.epochs} epochs", flush=True)
    if args.threads:
        from akd_core.torch_threads import use_torch_threads

        use_torch_threads(args.threads)
    bar = ProgressBar(enabled=not args.quiet)

    def on_epoch(done: int, epochs: int) -> None:
        bar({"progress": done / epochs, "stage": f"teacher {args.arch}", "epoch": done,
             "epochs": epochs})  # fmt: skip

    try:
        path, accuracy = make_reference_teacher(
            args.out, dataset, args.arch, epochs=args.epochs, seed=args.seed, on_epoch=on_epoch
        )
    finally:
        bar.close()
    print(f"teacher test accuracy {accuracy:.4f}; saved to {path.absolute()}")
    print(f'use it in a spec as {{"teacher": {{"source": "file:{path}"}}, ...}}')
    return EXIT_OK
