"""Data-parallel text jobs: 2 gloo ranks train a `bert` student as one process does on the
same global batches (each rank trims its own padding), and a text job on 2 devices writes
the usual outputs (student.onnx that passes parity, tokenizer/, student_hf/, the report)."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from akd_core.checkpoint import checkpoint_path
from akd_core.distributed import ParallelArm, Shard, train_arm_parallel
from akd_core.errors import SpecError
from akd_core.events import Hooks
from akd_core.pipeline import run_job
from akd_core.records import load_resume_state
from akd_core.spec import parse_spec
from akd_core.text.batches import split_batch
from akd_core.text.hf_folder import HfFolder
from akd_core.text.students import TokenClassifier, build_text_student
from akd_core.text.tokens import encode
from akd_core.trainer import ArmTrainer, Progress, TrainData
from tests.akd_core import trainer_support as ts
from tests.akd_core.text_support import (
    make_tokenizer,
    sentences,
    text_rows,
    trained_teacher,
    write_jsonl,
)

EPOCHS = {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1}
# A 1-layer bert without dropout: dropout masks are drawn per process, so only p = 0 can
# give the same loss curve on 1 and 2 processes (see the `dropout` student option).
TINY_BERT = {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "dropout": 0}
N_TRAIN, N_LONG = 64, 4


@functools.cache
def _tokens() -> tuple[torch.Tensor, torch.Tensor, int]:
    """(N, 3, L) tokens of mostly short texts and a few long ones, their labels, the vocab."""
    rows = sentences(N_TRAIN + 16, seed=3)
    # A few long texts: a global batch holding one has its half without it trimmed far
    # shorter on its rank than the batch is in one process (per-rank dynamic padding).
    for i in range(N_LONG):
        text, label = rows[i * 16]
        rows[i * 16] = (" ".join([text] * 4), label)
    tok = make_tokenizer([t for t, _ in rows])
    x = torch.from_numpy(encode(tok, [t for t, _ in rows], None, 64))
    y = torch.tensor([int(label == "pos") for _, label in rows])
    return x, y, len(tok)


def _data() -> TrainData:
    x, y, _ = _tokens()
    g = torch.Generator().manual_seed(0)
    # Confident, not one-hot, teacher logits: (N, 2) around the labels.
    logits = 3.0 * torch.nn.functional.one_hot(y[:N_TRAIN], 2).float() - 1.5
    logits += 0.5 * torch.randn(logits.shape, generator=g)
    return TrainData(x_train=x[:N_TRAIN], y_train=y[:N_TRAIN], x_val=x[N_TRAIN:].clone(),
                     y_val=y[N_TRAIN:].clone(), teacher_train=logits)  # fmt: skip


def _student(options: dict | None = None) -> TokenClassifier:
    _, _, vocab = _tokens()
    folder = HfFolder(Path("unused"), {"vocab_size": vocab, "max_position_embeddings": 64}, "", 0)
    torch.manual_seed(0)
    return build_text_student("bert", options or TINY_BERT, folder, ["neg", "pos"], 0, True, 64)


def _spec():
    return ts.arm_spec(annealing=EPOCHS, optimizer={"batch_size": 16, "name": "adamw", "lr": 1e-3})


def test_the_tokens_hold_a_few_long_texts_among_short_ones():
    """The premise of the padding check below: a rank's half of a batch is often shorter."""
    x, _, _ = _tokens()
    lengths = split_batch(x[:N_TRAIN], trim=False)["attention_mask"].sum(dim=1)
    assert int((lengths > 20).sum()) == N_LONG and int(lengths.median()) <= 12


@pytest.mark.slow
def test_two_gloo_ranks_train_a_bert_student_as_one_process(tmp_path):
    """Each rank takes 8 rows of every global batch of 16 and trims them to its own longest
    text: the padding differs from one process's, the loss curve does not (masked attention)."""
    start = _student().state_dict()
    one = ArmTrainer("annealing", _spec(), _student(), _data(), torch.device("cpu"),
                     tmp_path / "one", Hooks(), Progress(3), run_key="job").run(resume=False)  # fmt: skip
    job = ParallelArm("annealing", _spec(), _student(), _data(), "cpu", tmp_path / "two",
                      Progress(3), None, "job", False)  # fmt: skip
    two = train_arm_parallel(job, 2, Hooks())
    losses = [h.train_loss for h in one.history]
    # It trained: the best student is not the initial one.
    assert any(not torch.allclose(one.best_state[k], v, atol=1e-3) for k, v in start.items())
    assert [h.train_loss for h in two.history] == pytest.approx(losses, rel=1e-5)
    assert [h.val_accuracy for h in two.history] == [h.val_accuracy for h in one.history]
    for k, v in one.best_state.items():
        assert torch.allclose(two.best_state[k], v, atol=1e-5), k


@dataclass
class CopyCheckpointAt(Progress):
    """Rank 0's progress, which copies the arm's checkpoint to `dest` when its `at`-th epoch
    ends: the previous epoch's checkpoint, as a crash right then would leave it."""

    source: Path = Path()
    dest: Path = Path()
    at: int = 2

    def advance(self, epoch_seconds: float) -> None:
        super().advance(epoch_seconds)
        if self.done_epochs == self.at and torch.distributed.get_rank() == 0:
            shutil.copy(self.source, self.dest)  # rank 0 saves this epoch only after this


@pytest.mark.slow
def test_two_ranks_with_dropout_resume_exactly_from_an_earlier_checkpoint(monkeypatch, tmp_path):
    """Dropout on: each rank draws its own masks from its own stream, reseeded every epoch
    (only rank 0's RNG is in the checkpoint), so a resumed arm follows the uninterrupted one."""
    # The spawned ranks unpickle CopyCheckpointAt from this module: they get this sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    dropout = {**TINY_BERT, "dropout": 0.1}

    def arm(out: Path, progress: Progress, resume: bool) -> ParallelArm:
        return ParallelArm("annealing", _spec(), _student(dropout), _data(), "cpu", out, progress,
                           None, "job", resume)  # fmt: skip

    aside = checkpoint_path(tmp_path / "resumed", "annealing")
    aside.parent.mkdir(parents=True)
    copier = CopyCheckpointAt(3, source=checkpoint_path(tmp_path / "whole", "annealing"),
                              dest=aside)  # fmt: skip
    whole = train_arm_parallel(arm(tmp_path / "whole", copier, False), 2, Hooks())
    saved = load_resume_state(aside)  # as a crash in epoch 2 would have left it
    assert saved is not None and len(saved.loop.history) == 1 and not saved.done
    resumed = train_arm_parallel(arm(tmp_path / "resumed", Progress(3), True), 2, Hooks())
    assert [h.train_loss for h in resumed.history] == pytest.approx(
        [h.train_loss for h in whole.history], rel=1e-6
    )
    for k, v in whole.best_state.items():
        assert torch.allclose(resumed.best_state[k], v, atol=1e-6), k


def test_each_rank_reseeds_its_dropout_stream_per_epoch_apart_from_the_others():
    seeds = {Shard(r, 2).epoch_seed(0, "annealing", 1, e) for r in range(2) for e in range(3)}
    assert len(seeds) == 6 and all(0 <= s < 2**63 for s in seeds)
    assert Shard(1, 2).epoch_seed(0, "kd", 1, 0) == Shard(1, 4).epoch_seed(0, "kd", 1, 0)


def test_the_bert_dropout_option_is_checked_and_reaches_the_model():
    model = _student({**TINY_BERT, "dropout": 0.25}).hf
    assert model.config.hidden_dropout_prob == model.config.attention_probs_dropout_prob == 0.25
    assert _student({"layers": 1, "hidden": 32, "heads": 2}).hf.config.hidden_dropout_prob == 0.1
    for bad in (1, -0.1, "0.1", True):
        with pytest.raises(SpecError) as err:
            _student({**TINY_BERT, "dropout": bad})
        assert err.value.field == "student.options.dropout" and "from 0" in err.value.message


# -- a whole text job on 2 devices --------------------------------------------------------


def _job_spec(root: Path) -> dict:
    return {
        "teacher": {"source": f"file:{root / 'teacher'}"},
        "student": {"arch": "bert", "options": TINY_BERT},
        "dataset": {"source": f"file:{root / 'train.jsonl'}", "max_length": 32},
        "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 1},
        "optimizer": {"batch_size": 16, "lr": 1e-3},
        "compare": ["student"],
        "device": "cpu",
    }


@functools.cache
def _runs() -> tuple[Path, dict[int, dict]]:
    """The same text job on 1 and on 2 devices (gloo), sharing the token and logit caches."""
    root = Path(tempfile.mkdtemp(prefix="akd-text-ddp-"))
    shutil.copytree(trained_teacher(), root / "teacher")
    write_jsonl(root / "train.jsonl", text_rows(120))
    spec = parse_spec(_job_spec(root))
    reports = {d: run_job(spec, root / f"out{d}", devices=d, cache_dir=root / "cache")
               for d in (1, 2)}  # fmt: skip
    return root, reports


@pytest.mark.slow
def test_a_text_job_on_two_devices_trains_every_arm_as_on_one():
    _, reports = _runs()
    one, two = reports[1], reports[2]
    for arm in ("student", "baselines"):
        a = one[arm] if arm == "student" else one[arm]["student"]
        b = two[arm] if arm == "student" else two[arm]["student"]
        assert [h["train_loss"] for h in b["history"]] == pytest.approx(
            [h["train_loss"] for h in a["history"]], rel=1e-5
        )
        assert [h["val_accuracy"] for h in b["history"]] == [
            h["val_accuracy"] for h in a["history"]
        ]
        assert b["accuracy"] == a["accuracy"]  # the test split, in the launching process
        assert "data-parallel on 2 processes" in b["compile"]["reason"]


@pytest.mark.slow
def test_a_text_job_on_two_devices_writes_a_student_onnx_that_passes_parity():
    import onnxruntime as ort

    root, reports = _runs()
    r, out = reports[2], root / "out2"
    assert r["onnx"]["parity_max_abs_diff"] < 1e-4 and r["onnx"]["argmax_agreement"] == 1.0
    assert r["teacher"]["accuracy"] > 0.9 and r["dataset"]["kind"] == "text"
    assert json.loads((out / "report.json").read_text())["student"] == r["student"]
    assert "## Text input: what `student.onnx` takes" in (out / "report.md").read_text()
    for shipped in ("tokenizer/tokenizer.json", "student_hf/config.json", "tokenizer.zip"):
        assert (out / shipped).is_file(), shipped
    session = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == r["text"]["inputs"]
    assert not (out / ".teacher-").exists() and (out / "checkpoints" / "annealing.pt").is_file()


def test_a_text_job_refuses_more_devices_than_its_batch_can_feed(tmp_path):
    """Refused before anything is read (the teacher and data named here do not exist)."""
    spec = _job_spec(tmp_path)
    spec["optimizer"]["batch_size"] = 6
    with pytest.raises(SpecError) as err:
        run_job(parse_spec(spec), tmp_path / "out", devices=4)
    assert err.value.field == "devices" and "at least 8" in err.value.message
    assert not (tmp_path / "out" / "checkpoints").exists()
