"""Scoring and reporting for `make mutation`: the parts, the targets, the docs section."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "testing.md"
EXPLAINED = ROOT / "tools" / "mutation_equivalents.toml"
BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"
TARGET_SCORE = 0.85

# What is mutated, by part: mutmut mutant-name globs (files are listed in [tool.mutmut]).
# Of the job repository only the functions that filter by owner (and list_jobs' ?state=).
PARTS: dict[str, list[str]] = {
    "schedule": ["akd_core.schedule.*"],
    "losses": ["akd_core.losses.*"],
    # arm_setup: plan and progress; step_loss and arm_feed: the step's loss and rows (split out)
    "trainer": [
        "akd_core.trainer.*",
        "akd_core.arm_setup.*",
        "akd_core.step_loss.*",
        "akd_core.arm_feed.*",
    ],
    "cache": ["akd_core.cache.*"],
    # records: the resume state; arm_resume: an arm's save and restore (split out of trainer)
    "checkpoint": ["akd_core.checkpoint.*", "akd_core.records.*", "akd_core.arm_resume.*"],
    "owner checks": [
        "akd_service.db.jobs.x_get_job_for_owner__*",
        "akd_service.db.listing.x_list_jobs__*",
    ],
    "lease": ["worker.lease.*"],
}
# Parts where the target is no survivor at all (the method itself).
STRICT_PARTS = ("schedule", "losses")
# The best-epoch selection: the lines of ArmTrainer.run that pick and restore the best epoch.
BEST_EPOCH_LINE = re.compile(r"best|val_accuracy|load_state_dict\(loop")


@dataclass
class Mutant:
    """One mutant of a part: its mutmut name, verdict and the line it changed."""

    name: str
    part: str
    status: str
    before: str = ""
    after: str = ""
    why: str | None = None  # the explanation of an equivalent survivor, when there is one


@dataclass
class Outcome:
    """Every mutant of the run, with the run's time."""

    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0  # the full mutmut run, wall clock
    cpu_seconds: float = 0.0  # ... and its CPU time: what it needs of an idle machine
    recheck_seconds: float | None = None  # re-running its survivors after tests were added
    named_seconds: float = 0.0  # the named mutations
    cores: int = 2

    def count(self, part: str | None, status: str) -> int:
        return sum(m.status == status and part in (None, m.part) for m in self.mutants)

    def checked(self, part: str | None = None) -> int:
        """Mutants with a verdict (a run stopped early leaves some "not checked")."""
        return sum(part in (None, m.part) for m in self.mutants) - self.count(part, "not checked")

    def score(self, part: str | None = None) -> float:
        total = self.checked(part)
        return self.count(part, "killed") / total if total else 1.0


def function_of(name: str) -> str:
    """`akd_core.trainer.xǁArmTrainerǁrun__mutmut_3` -> `akd_core.trainer.ArmTrainer.run`."""
    base = name.rsplit("__mutmut_", 1)[0]
    module, _, func = base.rpartition(".")
    func = func.removeprefix("x_").removeprefix("x").replace("ǁ", ".").strip(".")
    return f"{module}.{func}"


def load_explanations() -> list[dict[str, str]]:
    """Hand-written reasons why a surviving mutant is equivalent (tools/mutation_equivalents)."""
    if not EXPLAINED.exists():
        return []
    return list(tomllib.loads(EXPLAINED.read_text()).get("equivalent", []))


def verdict(outcome: Outcome) -> list[str]:
    """What misses the targets (empty when the run meets them)."""
    misses = []
    if outcome.score() < TARGET_SCORE:
        misses.append(f"score {outcome.score():.1%} is under {TARGET_SCORE:.0%}")
    unchecked = outcome.count(None, "not checked")
    if unchecked:
        misses.append(f"{unchecked} mutants were not checked")
    for m in outcome.mutants:
        if m.status in ("killed", "not checked"):
            continue
        strict = m.part in STRICT_PARTS or (
            m.name.startswith("akd_core.trainer.xǁArmTrainerǁrun__")
            and BEST_EPOCH_LINE.search(m.before)
        )
        if strict and m.why is None:
            misses.append(f"{m.name} survives in the method itself: {m.before!r} -> {m.after!r}")
        elif m.why is None:
            misses.append(f"{m.name} survives unexplained: {m.before!r} -> {m.after!r}")
    return misses


def render(outcome: Outcome, tool_version: str, named_table: list[str]) -> str:
    """The generated section of docs/testing.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    total = len(outcome.mutants)
    lines = [
        BEGIN,
        f"Last run: {when}, mutmut {tool_version}, {outcome.cores} cores: the full mutmut run "
        f"took {outcome.seconds / 60:.1f} min (generation, clean run, every mutant; "
        f"{outcome.cpu_seconds / 60:.1f} CPU-minutes, about "
        f"{outcome.cpu_seconds / 60 / outcome.cores:.1f} min on {outcome.cores} idle cores)"
        + (
            f", re-checking its survivors against the tests added since "
            f"{outcome.recheck_seconds / 60:.1f} min"
            if outcome.recheck_seconds is not None
            else ""
        )
        + (f", the named mutations {outcome.named_seconds / 60:.1f} min." if named_table else "."),
        "",
        f"**Score: {outcome.count(None, 'killed')} of {outcome.checked()} checked mutants killed "
        f"({outcome.score():.1%}); {total} mutants in all"
        + (
            f", {total - outcome.checked()} NOT CHECKED (the run was stopped before it "
            "reached them)**"
            if total > outcome.checked()
            else "**"
        )
        + ".",
        "",
        "| part | mutants | not checked | killed | survived | no tests | score of checked |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for part in PARTS:
        n = sum(m.part == part for m in outcome.mutants)
        lines.append(
            f"| {part} | {n} | {outcome.count(part, 'not checked')} "
            f"| {outcome.count(part, 'killed')} | {outcome.count(part, 'survived')}"
            f" | {outcome.count(part, 'no tests')} | {outcome.score(part):.1%} |"
        )
    survivors = [m for m in outcome.mutants if m.status not in ("killed", "not checked")]
    lines += ["", f"Surviving mutants ({len(survivors)}), each with why it is equivalent:", ""]
    for m in survivors:
        lines.append(f"- `{m.name}` ({m.status}): `{m.before}` -> `{m.after}`  ")
        lines.append(f"  {m.why or 'UNEXPLAINED: kill it with a test or explain it'}")
    if named_table:
        lines += [
            "",
            "The mutations named in issue 7, each applied alone and run against its test:",
            "",
            *named_table,
        ]
    lines.append(END)
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Replace the generated section of docs/testing.md (the rest is written by hand)."""
    text = DOCS.read_text() if DOCS.exists() else f"# Testing\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOCS.write_text(head + section + tail)
