"""Training defaults for text students, applied only to the fields a spec leaves unset.

A student that starts from the teacher (shrink-teacher) gets the paper's GLUE recipe: AdamW,
lr 2e-5, linear decay with warm-up, batch 32, tau_max 7 (E1 14, E2 4). A randomly initialised
`bert` student needs a larger step: lr 1e-4 (the usual step for small BERTs trained from
scratch; not tuned here yet: bench/text_minilm.py's CPU budget was too small to tell), with
the same schedule, batch and tau_max.
"""

from __future__ import annotations

from typing import Any

from akd_core.spec import AnnealingSpec, JobSpec, OptimizerSpec

GLUE_TAU_MAX, GLUE_E1, GLUE_E2 = 7, 14, 4
LR = {"shrink-teacher": 2e-5, "bert": 1e-4}
BATCH_SIZE = 32


def _unset(model: OptimizerSpec | AnnealingSpec, name: str) -> bool:
    return name not in model.model_fields_set


def text_defaults(spec: JobSpec) -> JobSpec:
    """The spec as a text job runs it: unset optimizer and annealing fields get text defaults."""
    opt: dict[str, Any] = {}
    o = spec.optimizer
    if _unset(o, "name"):
        opt["name"] = "adamw"
    if o.lr is None and (opt.get("name", o.name) == "adamw"):
        opt["lr"] = LR.get(spec.student.arch, 1e-4)
    if o.schedule is None:
        opt["schedule"] = "linear"
    if _unset(o, "batch_size"):
        opt["batch_size"] = BATCH_SIZE
    ann: dict[str, Any] = {}
    a = spec.annealing
    # The schedule's defaults go together (phase1_epochs must be a multiple of tau_max): a
    # spec that sets either keeps the generic default of the other, as validated.
    if _unset(a, "tau_max") and _unset(a, "phase1_epochs"):
        ann.update(tau_max=GLUE_TAU_MAX, phase1_epochs=GLUE_E1)
        if _unset(a, "phase2_epochs"):
            ann["phase2_epochs"] = GLUE_E2
    optimizer = OptimizerSpec.model_validate({**o.model_dump(exclude_unset=True), **opt})
    annealing = AnnealingSpec.model_validate({**a.model_dump(exclude_unset=True), **ann})
    return spec.model_copy(update={"optimizer": optimizer, "annealing": annealing})
