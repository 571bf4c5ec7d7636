"""`akd distill SPEC --out DIR`: a whole run on this machine, no service needed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from akd_core.cache_prune import gib_to_bytes, parse_max_gb, prune_after_job
from akd_core.errors import AKDError, JobCancelled, SpecError, TrainingError
from akd_core.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from akd_core.limits import Limits
from akd_core.progress_bar import ProgressBar
from akd_core.torch_threads import use_torch_threads

if TYPE_CHECKING:
    from akd_core.spec import JobSpec


def add_distill_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `akd distill` (shared with the top-level `akd` command)."""
    parser.add_argument(
        "spec", type=Path, help="job spec (JSON); schema in docs/job-spec.schema.json"
    )
    parser.add_argument("--out", type=Path, help="output folder (default runs/<spec name>)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override spec.device")
    parser.add_argument(
        "--cache-dir", type=Path, help="logit and data cache, shareable (default <out>/.cache)"
    )
    parser.add_argument(
        "--cache-max-gb",
        type=max_gb_type("--cache-max-gb"),
        help="after the run, remove least recently used cache entries until the cache folder "
        "is at most this many GiB (default: no cap)",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="train each arm data-parallel on N devices (DDP: N GPUs, or N gloo processes on CPU)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch intra-op threads (default: torch's own, every usable core: the CLI runs alone)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return int(text)


def max_gb_type(flag: str) -> Callable[[str], float | None]:
    """argparse type of a cache cap flag: a size in GiB >= 0, or 'unlimited'."""

    def parse(text: str) -> float | None:
        try:
            return parse_max_gb(text, flag)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return parse


def file_source_path(source: str, spec_dir: Path) -> Path:
    """The absolute path a `file:` source names; a relative one is relative to the spec's folder."""
    path = Path(source.removeprefix("file:")).expanduser()
    return path if path.is_absolute() else (spec_dir / path).absolute()


def file_sources(spec: JobSpec, section: str) -> dict[str, str]:
    """The `file:` sources of one spec section: {field name: source}."""
    part = getattr(spec, section)
    return {
        name: value
        for name in ("source", "val_source", "test_source")
        if isinstance(value := getattr(part, name, None), str) and value.startswith("file:")
    }


def with_absolute_file_sources(spec: JobSpec, spec_dir: Path) -> JobSpec:
    """`spec` with every `file:` source made absolute (relative to the spec file, as `akd submit`)."""
    updates: dict[str, Any] = {}
    for section in ("teacher", "dataset"):
        fields = {
            name: f"file:{file_source_path(value, spec_dir)}"
            for name, value in file_sources(spec, section).items()
        }
        if fields:
            updates[section] = getattr(spec, section).model_copy(update=fields)
    return spec.model_copy(update=updates)


def check_file_sources_exist(spec: JobSpec) -> None:
    """SpecError naming the first `file:` source (absolute by now) that does not exist."""
    # Checked before torch is imported and any data is read: a mistyped teacher path would
    # otherwise surface only after the dataset has loaded, or not at all behind a data error.
    for section in ("teacher", "dataset"):
        for name, value in file_sources(spec, section).items():
            path = Path(value.removeprefix("file:"))
            if not path.exists():
                raise SpecError(
                    f"file {path} does not exist (a file, or a folder for an image folder "
                    "or a transformers model)",
                    field=f"{section}.{name}",
                )


def summary_text(report: dict[str, Any], out_dir: Path) -> str:
    """The one-screen summary printed at the end of a run."""
    from akd_core.report_md import verdict_lines  # numpy: loaded once a run has finished

    s, t, o = report["student"], report["teacher"], report["onnx"]
    lines = [
        f"teacher   {t['accuracy']:.4f}  ({t['params'] or '?'} params, {t['format']})",
        f"student   {s['accuracy']:.4f}  ({s['params']} params, {s['arch']}, {report['method']})",
    ]
    for arm, b in report["baselines"].items():
        lines.append(f"  {arm:<8}{b['accuracy']:.4f}  (same budget, baseline)")
    if report.get("compression"):
        lines.append(f"compression {report['compression']:.1f}x fewer parameters")
    lines.append(
        f"onnx      max|diff| {o['parity_max_abs_diff']:.1e}, argmax agreement "
        f"{o['argmax_agreement']:.4f}, {o['latency_ms_batch1']:.3f} ms at batch 1"
    )
    lines += verdict_lines(report)  # a baseline that beat the student, the test resolution
    lines.append(f"outputs   {out_dir}/student.onnx, report.json, report.md")
    return "\n".join(lines)


def distill_main(args: argparse.Namespace) -> int:
    """Run `akd distill`; returns the process exit code."""
    from akd_core.preflight import check_spec
    from akd_core.spec import load_spec_file

    bar = ProgressBar(enabled=not args.quiet)
    out_dir = args.out or Path("runs") / args.spec.stem
    cache_dir = args.cache_dir or out_dir / ".cache"
    max_bytes = gib_to_bytes(getattr(args, "cache_max_gb", None))
    try:
        spec = with_absolute_file_sources(load_spec_file(args.spec), args.spec.parent)
        check_spec(spec)  # before torch is imported: a misspelt arch fails in under a second
        check_file_sources_exist(spec)
        from akd_core.pipeline import run_job  # torch: seconds to import

        if args.threads:
            use_torch_threads(args.threads)

        report = run_job(
            spec,
            out_dir,
            on_event=bar,
            resume=args.resume,
            cache_dir=cache_dir,
            device=args.device,
            devices=args.devices,
            limits=Limits(cache_max_bytes=max_bytes),
        )
    except KeyboardInterrupt:
        bar.close()
        print("\ninterrupted; rerun with --resume to continue from the last epoch", file=sys.stderr)
        return EXIT_INTERRUPTED
    except JobCancelled as exc:
        bar.close()
        print(f"cancelled: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AKDError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:  # a failed run may have cached entries too
        bar.close()
        prune_after_job(cache_dir, max_bytes, lambda line: print(line, file=sys.stderr))
    print(summary_text(report, out_dir))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """`python -m akd_core.cli SPEC --out DIR`, the same as `akd distill`."""
    parser = argparse.ArgumentParser(prog="akd distill", description=__doc__)
    add_distill_arguments(parser)
    return distill_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
