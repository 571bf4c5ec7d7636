"""`make mutation`: mutmut over the method's core on a private copy; the score goes to docs/testing.md.

The checkout is shared (other people run tests in it), and mutmut writes mutated sources to a
`mutants/` folder beside the code. So the tree is copied to a scratch folder with its own
TMPDIR and data folder, mutmut runs there, and only the summary is written back here.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

# tools/ is on sys.path when this file runs as a script
import named_mutations
from mutation_report import (
    DOCS,
    PARTS,
    ROOT,
    Mutant,
    Outcome,
    function_of,
    load_explanations,
    render,
    verdict,
    write_docs,
)

# mutmut's exit codes (mutmut/stats.py); a timeout counts as killed, as in mutmut's badge.
KILLED = {1, 3, 24, -24, 36, 37, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


def copy_tree(dest: Path) -> None:
    """Copy tracked and untracked-but-not-ignored files (what a checkout holds) to dest."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")  # fmt: skip
    for raw in filter(None, listed):
        rel = raw.decode()
        src = ROOT / rel
        if src.is_file() and not rel.startswith("mutants/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def scratch_env(scratch: Path) -> dict[str, str]:
    """The environment of the copy's test runs: its own temp and data folders, one thread."""
    (scratch / "tmp").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        TMPDIR=str(scratch / "tmp"),  # pytest's tmp_path folders stay in the scratch folder
        AKD_DATA_DIR=str(scratch / "data"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run_mutmut(
    repo: Path, env: dict[str, str], cores: int, log_path: Path, names: list[str]
) -> float:
    """Run mutmut in the copy on the named mutants (globs); the wall seconds it took."""
    mutmut = Path(sys.executable).with_name("mutmut")
    started = time.monotonic()
    with log_path.open("ab") as log:
        proc = subprocess.run(
            [str(mutmut), "run", "--max-children", str(cores), *names],
            cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed (exit {proc.returncode}); end of {log_path}:\n{tail}")
    return seconds


def part_of(name: str) -> str | None:
    """The part a mutant belongs to, or None when it is outside what we score."""
    for part, globs in PARTS.items():
        if any(fnmatch.fnmatch(name, g) for g in globs):
            return part
    return None


def status_of(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "not checked" if code is None else "suspicious"


def changed_lines(repo: Path, name: str) -> tuple[str, str]:
    """The line a mutant removed and the one it added (from `mutmut show`)."""
    mutmut = Path(sys.executable).with_name("mutmut")
    shown = subprocess.run(
        [str(mutmut), "show", name], cwd=repo, capture_output=True, text=True
    ).stdout.splitlines()
    minus = [ln[1:].strip() for ln in shown if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:].strip() for ln in shown if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(minus), " / ".join(plus)


def collect(repo: Path, explain: bool = True) -> list[Mutant]:
    """Every scored mutant with its verdict; survivors get their diff and explanation."""
    explanations = load_explanations() if explain else []
    mutants = []
    for meta in sorted((repo / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in sorted(codes.items()):
            part = part_of(name)
            if part is None:
                continue
            m = Mutant(name=name, part=part, status=status_of(code))
            if m.status not in ("killed", "not checked") and explain:
                m.before, m.after = changed_lines(repo, name)
                for e in explanations:
                    if e["function"] == function_of(name) and e["mutated"] == m.after:
                        m.why = e["why"]
            mutants.append(m)
    return mutants


def cpu_seconds() -> float:
    """CPU time of every process this one waited for (mutmut, its server, each mutant's run)."""
    t = os.times()
    return t.children_user + t.children_system


def sync_tests(repo: Path) -> None:
    """Bring the checkout's files into a kept copy (and mutmut's mirror), mutated ones aside."""
    fresh = repo.parent / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    copy_tree(fresh)

    def settings(root: Path) -> dict[str, list[str]]:
        return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mutmut"]

    mutated = settings(repo)["only_mutate"]
    # mutmut drops every verdict when its test selection or pytest arguments change, and a
    # verdict means nothing once the mutated file itself changed.
    changed = [f for f in mutated if (fresh / f).read_bytes() != (repo / f).read_bytes()]
    if settings(fresh) != settings(repo) or changed:
        shutil.rmtree(fresh)
        raise SystemExit(f"[tool.mutmut] or {changed} changed since the kept run: run in full")
    for dest in (repo, repo / "mutants"):
        for src in fresh.rglob("*"):
            rel = src.relative_to(fresh)
            if src.is_file() and str(rel) not in mutated and (dest / rel.parts[0]).exists():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    shutil.rmtree(fresh)


def recheck(scratch: Path, env: dict[str, str], cores: int) -> float:
    """Run again, against the current tests, only the mutants a kept run left alive."""
    repo = scratch / "repo"
    alive = [
        m.name
        for m in collect(repo, explain=False)
        if m.status in ("survived", "no tests", "suspicious")
    ]
    sync_tests(repo)
    print(f"re-checking {len(alive)} surviving mutants against the current tests", flush=True)
    return run_mutmut(repo, env, cores, scratch / "mutmut.log", alive) if alive else 0.0


def main(argv: list[str] | None = None) -> int:
    """Copy, mutate, test, score; exit 1 when the targets are missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a new temp folder)")
    ap.add_argument("--cores", type=int, default=2, help="mutants tested at once (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder afterwards")
    ap.add_argument("--no-docs", action="store_true", help="print the result, leave docs/")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--named-only", action="store_true", help="only the issue's named mutations (minutes)"
    )
    mode.add_argument(
        "--recheck", action="store_true",
        help="re-run only the survivors of the run kept in --workdir, against the current tests",
    )  # fmt: skip
    mode.add_argument(
        "--report-only", action="store_true", help="score the run kept in --workdir again"
    )
    ap.add_argument("--no-named", action="store_true", help="skip the issue's named mutations")
    args = ap.parse_args(argv)
    if (args.recheck or args.report_only) and args.workdir is None:
        ap.error("--recheck and --report-only need the --workdir of a kept run")
    scratch = args.workdir or Path(tempfile.mkdtemp(prefix="akd-mutation-"))
    repo, full_seconds = scratch / "repo", scratch / "mutmut-seconds.txt"
    env = scratch_env(scratch)
    outcome = Outcome(cores=args.cores)
    if args.recheck or args.report_only:
        outcome.seconds, outcome.cpu_seconds = map(float, full_seconds.read_text().split())
        if args.recheck:
            outcome.recheck_seconds = recheck(scratch, env, args.cores)
    else:
        shutil.rmtree(repo, ignore_errors=True)  # a previous run's copy: no stale results
        repo.mkdir(parents=True)
        print(f"copying the tree to {repo}", flush=True)
        copy_tree(repo)
    if not (args.named_only or args.recheck or args.report_only):
        log_path = scratch / "mutmut.log"
        print(f"running mutmut on {args.cores} cores (log: {log_path})", flush=True)
        globs = [g for part in PARTS.values() for g in part]
        outcome.seconds = run_mutmut(repo, env, args.cores, log_path, globs)
        outcome.cpu_seconds = cpu_seconds()
        full_seconds.write_text(f"{outcome.seconds:.1f} {cpu_seconds():.1f}\n")
    named: list[tuple[named_mutations.Named, str]] = []
    if not args.no_named:
        print("the mutations named in issue 7, each against its test:", flush=True)
        started = time.monotonic()
        named = named_mutations.check_all(repo, env)
        outcome.named_seconds = time.monotonic() - started
    misses = [f"named mutation {v}: {n.what}" for n, v in named if v != "killed"]
    if args.named_only:
        print("\n".join(named_mutations.render(named)))
    else:
        outcome.mutants = collect(repo)
        table = named_mutations.render(named) if named else []
        section = render(outcome, version("mutmut"), table)
        print(section)
        if not args.no_docs:
            write_docs(section)
            print(f"wrote {DOCS.relative_to(ROOT)}")
        misses = verdict(outcome) + misses
    if not args.keep and args.workdir is None:
        shutil.rmtree(scratch, ignore_errors=True)
    for miss in misses:
        print(f"MISSED: {miss}", file=sys.stderr)
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
