"""load_text_dataset: read csv/jsonl text, map labels, split, tokenise once (cached by hash)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from akd_core.cache_lease import Lease, write_leased
from akd_core.cache_prune import prune_and_tell
from akd_core.data.dataset import split_sizes
from akd_core.data.splits import cap, carve
from akd_core.errors import DatasetError
from akd_core.fileio import sha256_of
from akd_core.formats import infer_dataset_format
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec
from akd_core.text.rows import TEXT_FORMATS, TextRows, read_text_rows
from akd_core.text.tokens import channels, encode

TOKENS_VERSION = 1  # bump when reading, splitting or tokenising changes
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}
_GENERIC_LABEL = "LABEL_"  # transformers' default id2label names carry no meaning


@dataclass(frozen=True, eq=False)
class TextDataset:
    """Token splits (N, C, L) int64 with int64 labels; quacks like data.Dataset where shared."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    inputs: tuple[str, ...]  # the channel names: input_ids, attention_mask[, token_type_ids]
    max_length: int
    fingerprint: str
    source_name: str
    source_sha256: str
    cache_hit: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, L): one sample's token channels and its split's padded length (for sizing)."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """How many classes the labels index (0 .. num_classes - 1)."""
        return len(self.classes)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for reports (the image datasets' fields, for text)."""
        return {
            "source": self.source_name,
            "kind": "text",
            "input_shape": [len(self.inputs), self.max_length],
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "label_map": {name: i for i, name in enumerate(self.classes)},
            "sizes": split_sizes(self.y_train, self.y_val, self.y_test),
            "max_length": self.max_length,
            "inputs": list(self.inputs),
            "fingerprint": self.fingerprint,
            "sha256": self.source_sha256,
        }


def _subset(rows: TextRows, idx: np.ndarray) -> TextRows:
    def pick(v: list[Any] | None) -> list[Any] | None:
        return None if v is None else [v[i] for i in idx]

    return TextRows(rows.source, pick(rows.texts) or [], pick(rows.pairs), pick(rows.labels) or [],
                    pick(rows.splits), pick(rows.lines) or [])  # fmt: skip


def _by_split_column(rows: TextRows) -> dict[str, TextRows]:
    assert rows.splits is not None
    for value, line in zip(rows.splits, rows.lines, strict=True):
        if value not in SPLIT_NAMES:
            raise DatasetError(
                f"dataset {rows.source!r}, line {line}: split {value!r} is not one of "
                f"{', '.join(SPLIT_NAMES)}",
                field="dataset.split_column",
            )
    names = np.array([SPLIT_NAMES[v] for v in rows.splits])
    return {s: _subset(rows, np.flatnonzero(names == s)) for s in ("train", "val", "test")
            if (names == s).any()}  # fmt: skip


def _classes(split_rows: dict[str, TextRows], teacher_labels: list[str], declared: int | None,
             max_classes: int) -> list[str]:  # fmt: skip
    """Class names in id order: the teacher's own names when they cover the data, else sorted."""
    train = split_rows["train"]
    values = sorted(set(train.labels))
    if len(values) > max_classes:
        raise DatasetError(
            f"dataset {train.source!r} has {len(values)} distinct labels, past the server's "
            f"limit of {max_classes} classes",
            field="dataset.label_column",
        )
    meaningful = teacher_labels and not all(n.startswith(_GENERIC_LABEL) for n in teacher_labels)
    if meaningful and set(values) <= set(teacher_labels):
        return list(teacher_labels)  # the teacher's logit order: no re-mapping needed
    if all(v.lstrip("-").isdigit() for v in values):
        k = declared or (max(int(v) for v in values) + 1 if min(int(v) for v in values) >= 0 else 0)
        if k and all(0 <= int(v) < k for v in values):
            return [str(i) for i in range(k)]
    return values


def _label_ids(rows: TextRows, classes: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    if all(c.isdigit() for c in classes):  # "07" and "7" are the same class id
        index.update({str(int(c)): i for i, c in enumerate(classes)})
    ids = np.empty(len(rows.labels), np.int64)
    for j, (label, line) in enumerate(zip(rows.labels, rows.lines, strict=True)):
        key = (
            str(int(label))
            if label.lstrip("-").isdigit() and all(c.isdigit() for c in classes)
            else label
        )
        if key not in index:
            raise DatasetError(
                f"dataset {rows.source!r}, line {line}: label {label!r} is unknown (not among "
                f"the training labels {classes[:20]})",
                field="dataset.label_column",
            )
        ids[j] = index[key]
    return ids


def _carve(rows: TextRows, y: np.ndarray, fraction: float, rng: np.random.Generator
           ) -> tuple[TextRows, np.ndarray, TextRows, np.ndarray]:  # fmt: skip
    keep, held = carve(y, fraction, rng)
    return _subset(rows, keep), y[keep], _subset(rows, held), y[held]


def _token_key(digests: list[str], spec: DatasetSpec, tokenizer_sha: str, seed: int) -> str:
    settings = spec.model_dump(
        mode="json", exclude={"source", "val_source", "test_source", "format"}
    )
    record = {"v": TOKENS_VERSION, "data": digests, "tok": tokenizer_sha, "seed": seed, **settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def tokenizer_sha(root: Path) -> str:
    """sha256 over the tokenizer files of a teacher folder (what tokenises the data)."""
    h = hashlib.sha256()
    for p in sorted(root.glob("*")):
        if p.is_file() and (p.name.startswith(("tokenizer", "special_tokens", "added_tokens"))
                            or p.suffix in (".txt", ".model") or p.name == "vocab.json"):  # fmt: skip
            h.update(f"{p.name}\0{sha256_of(p)}\n".encode())
    return h.hexdigest()


def text_format(path: Path, declared: str | None) -> str:
    """csv or jsonl: as declared, else by extension, else sniffed (rows then name bad lines)."""
    if declared in TEXT_FORMATS:
        return declared
    by_suffix = path.suffix.lower().lstrip(".")
    return by_suffix if by_suffix in TEXT_FORMATS else infer_dataset_format(path, declared)


def load_text_dataset(
    spec: DatasetSpec,
    paths: dict[str, Path],
    tokenizer: Any,
    tokenizer_fingerprint: str,
    teacher_labels: list[str],
    seed: int,
    cache_dir: Path,
    limits: Limits | None = None,
    on_evict: Callable[[str], None] | None = None,
) -> TextDataset:
    """Read `paths` ("train" and optionally "val"/"test" files), split, label and tokenise.

    New tokens are written to `cache_dir/tokens/` after room is made under
    `limits.cache_max_bytes`; `on_evict(line)` hears each entry evicted for them."""
    limits = limits or Limits()
    fmts = {s: text_format(p, spec.format) for s, p in paths.items()}
    digests = {s: sha256_of(p) for s, p in paths.items()}
    key = _token_key(
        [f"{s}:{d}" for s, d in sorted(digests.items())], spec, tokenizer_fingerprint, seed
    )
    # A split column applies to the main file; separate val/test files are their split.
    alone = spec.model_copy(update={"split_column": None})
    rows = {s: read_text_rows(p, fmts[s], spec if s == "train" else alone, limits)
            for s, p in paths.items()}  # fmt: skip
    if spec.split_column:
        rows = {**_by_split_column(rows.pop("train")), **rows}
    if "train" not in rows:
        raise DatasetError(f"dataset {paths['train'].name!r} has no training rows",
                           field="dataset.split_column")  # fmt: skip
    classes = _classes(rows, teacher_labels, spec.num_classes, limits.max_classes)
    if len(classes) < 2:
        raise DatasetError(f"dataset {paths['train'].name!r} has {len(classes)} class; "
                           "classification needs at least 2", field="dataset.label_column")  # fmt: skip
    ys = {s: _label_ids(r, classes) for s, r in rows.items()}
    rng = np.random.default_rng(seed)
    for name, fraction in (("test", spec.test_fraction), ("val", spec.val_fraction)):
        if name not in rows:
            rows["train"], ys["train"], rows[name], ys[name] = _carve(
                rows["train"], ys["train"], fraction, rng
            )
    if spec.max_train_samples is not None:
        keep = cap(ys["train"], spec.max_train_samples, rng)
        rows["train"], ys["train"] = _subset(rows["train"], keep), ys["train"][keep]
    for name, y in ys.items():
        if len(y) == 0:
            raise DatasetError(f"dataset {paths['train'].name!r}: too few rows, the {name} split "
                               "would be empty", field="dataset.source")  # fmt: skip
    tokens, hit = _cached_tokens(cache_dir, key, rows, tokenizer, spec, limits.cache_max_bytes,
                                 on_evict)  # fmt: skip
    return TextDataset(
        x_train=tokens["train"], y_train=ys["train"], x_val=tokens["val"], y_val=ys["val"],
        x_test=tokens["test"], y_test=ys["test"], classes=classes, inputs=channels(tokenizer),
        max_length=spec.max_length, fingerprint=key, source_name=paths["train"].name,
        source_sha256=digests["train"],
        cache_hit=hit,
    )  # fmt: skip


def _cached_tokens(cache_dir: Path, key: str, rows: dict[str, TextRows], tokenizer: Any,
                   spec: DatasetSpec, max_bytes: int | None = None,
                   on_evict: Callable[[str], None] | None = None,
                   ) -> tuple[dict[str, np.ndarray], bool]:  # fmt: skip
    """Token arrays per split from cache_dir/tokens/<key>.npz, or tokenised and stored there."""
    path = cache_dir / "tokens" / f"{key}.npz"
    with Lease.shared(path):  # read whole: no lease needed once in memory
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    return {s: f[s] for s in ("train", "val", "test")}, True
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file is rebuilt
    tokens = {s: encode(tokenizer, r.texts, r.pairs, spec.max_length) for s, r in rows.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Room first (the arrays' bytes are the entry's, give or take the .npz headers).
    prune_and_tell(cache_dir, max_bytes, on_evict, sum(a.nbytes for a in tokens.values()))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, train=tokens["train"], val=tokens["val"], test=tokens["test"])
            fh.flush()
            os.fsync(fh.fileno())

    write_leased(path, write)  # leased: a killed write's temp file is pruned
    return tokens, False
