"""A tiny BERT teacher trained here on generated text, and text datasets written to disk."""

from __future__ import annotations

import csv
import functools
import json
import random
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch

POSITIVE = ["sun", "happy", "bright", "warm", "joy", "good", "great", "love"]
NEGATIVE = ["rain", "sad", "dark", "cold", "gloom", "bad", "awful", "hate"]
FILLER = ["the", "a", "is", "was", "day", "it", "very", "and", "of", "so"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) rows: 'pos' texts hold positive words, 'neg' texts negative ones."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = [
            rng.choice(POSITIVE if label == "pos" else NEGATIVE) for _ in range(rng.randint(1, 3))
        ]
        words += [rng.choice(FILLER) for _ in range(rng.randint(1, 12))]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def make_tokenizer(texts: list[str], token_types: bool = True):
    """A WordLevel fast tokenizer trained on `texts`, with BERT's special tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )  # fmt: skip
    names = ["input_ids", "token_type_ids", "attention_mask"] if token_types else None
    extra = {"model_input_names": names} if names else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   **extra)  # fmt: skip


def make_text_teacher(folder: Path, layers: int = 4, rows: int = 240, epochs: int = 3) -> float:
    """Train a tiny BertForSequenceClassification on generated text, save it; its accuracy."""
    from transformers import BertConfig, BertForSequenceClassification

    data = sentences(rows, seed=1)
    tok = make_tokenizer([t for t, _ in data])
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                     num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})  # fmt: skip
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    enc = tok([t for t, _ in data], padding=True, return_tensors="pt")
    y = torch.tensor([int(label == "pos") for _, label in data])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for i in range(0, rows, 32):
            batch = {k: v[i : i + 32] for k, v in enc.items()}
            loss = model(**batch, labels=y[i : i + 32]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(**enc).logits.argmax(1) == y).float().mean())
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return acc


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """One JSON object a line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A CSV file with a header row."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def text_rows(n: int, seed: int = 7) -> list[dict]:
    """jsonl records {"text", "label"} of the generated task."""
    return [{"text": t, "label": lab} for t, lab in sentences(n, seed)]


@functools.cache
def trained_teacher() -> Path:
    """The tiny BERT teacher, trained once per test process (4 layers, accuracy > 90%)."""
    folder = Path(tempfile.mkdtemp(prefix="akd-text-teacher-")) / "teacher"
    acc = make_text_teacher(folder)
    assert acc > 0.9, f"text teacher too weak: {acc}"
    return folder


def copy_teacher(dest: Path) -> Path:
    """A fresh copy of the trained teacher folder, for tests that change it."""
    return Path(shutil.copytree(trained_teacher(), dest))


def zip_folder(folder: Path, path: Path) -> Path:
    """The folder's files in a zip under a top-level folder of the same name."""
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    return path


def onnx_teacher_folder(dest: Path) -> Path:
    """The trained teacher exported to `dest`/model.onnx beside its tokenizer files (no config)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from akd_core.text.export import export_text_onnx
    from akd_core.text.students import TokenClassifier

    dest.mkdir(parents=True)
    hf = AutoModelForSequenceClassification.from_pretrained(str(trained_teacher())).eval()
    names = ("input_ids", "attention_mask", "token_type_ids")
    export_text_onnx(TokenClassifier(hf), names, dest / "model.onnx", {}, 17)
    AutoTokenizer.from_pretrained(str(trained_teacher())).save_pretrained(str(dest))
    return dest


def hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """`folder` as `repo_id`'s main revision in a hub cache (HF_HUB_CACHE layout), as a download
    leaves it: models--org--name/{blobs/<sha256>, snapshots/<rev>/<file> -> blob, refs/main}."""
    import hashlib

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / revision
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = snapshot / p.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(
                Path("../" * (len(link.relative_to(repo).parts) - 1)) / "blobs" / blob.name
            )
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return cache


def offline_hub(monkeypatch, cache: Path) -> Path:
    """Point huggingface_hub at `cache` with outgoing traffic off, as HF_HUB_CACHE and
    HF_HUB_OFFLINE=1 would at process start (the library reads them once, on import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache
