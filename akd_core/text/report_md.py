"""The text part of report.md: tokens and sequence lengths, the label map, the shipped
tokenizer, and a snippet that tokenises a text and runs student.onnx (torch-free)."""

from __future__ import annotations

from typing import Any

import numpy as np

EXAMPLE_CHARS = 200  # the example text in the card's snippet is cut to this many characters


def token_lengths(x: np.ndarray, max_length: int) -> dict[str, Any]:
    """Tokens per text of one (N, C, L) split: total, mean, median, p95, max, rows at max_length."""
    n = x[:, 1].sum(axis=1) if len(x) else np.zeros(0, np.int64)  # attention_mask: real tokens
    pct = (lambda q: float(np.percentile(n, q))) if len(n) else (lambda q: 0.0)
    return {
        "texts": len(n),
        "tokens": int(n.sum()),
        "mean": float(n.mean()) if len(n) else 0.0,
        "median": pct(50),
        "p95": pct(95),
        "max": int(n.max()) if len(n) else 0,
        "at_max_length": int((n >= max_length).sum()),
    }


def example_text(tokenizer: Any, x: np.ndarray) -> str | None:
    """The first test text as the tokenizer reads it back (special tokens dropped), cut short."""
    if not len(x):
        return None
    ids = x[0, 0, : int(x[0, 1].sum())].tolist()
    return str(tokenizer.decode(ids, skip_special_tokens=True))[:EXAMPLE_CHARS]


def _lengths_table(lengths: dict[str, dict[str, Any]], max_length: int) -> list[str]:
    rows = [
        f"| {split} | {v['texts']:,} | {v['tokens']:,} | {v['mean']:.1f} | {v['median']:.0f} | "
        f"{v['p95']:.0f} | {v['max']} | {v['at_max_length']:,} |"
        for split, v in lengths.items()
    ]
    return [
        f"| split | texts | tokens | mean | median | p95 | max | at max_length ({max_length}) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def snippet_lines(t: dict[str, Any]) -> list[str]:
    """Python that tokenises a text with tokenizer/ and runs student.onnx on it."""
    text = t.get("example_text") or "a text to classify"
    return [
        "```python",
        "import json",
        "",
        "import numpy as np",
        "import onnxruntime as ort",
        "from transformers import AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{t["tokenizer"].rstrip("/")}")',
        'session = ort.InferenceSession("student.onnx")',
        "names = [i.name for i in session.get_inputs()]",
        f"enc = tokenizer([{text!r}], truncation=True, max_length={t['max_length']}, "
        'padding=True, return_tensors="np")',
        "logits = session.run(None, {n: enc[n].astype(np.int64) for n in names})[0]",
        'labels = json.loads(session.get_modelmeta().custom_metadata_map["labels"])',
        'print("prediction:", labels[int(logits.argmax(1)[0])])',
        "```",
    ]


def text_card(r: dict[str, Any]) -> list[str]:
    """report.md's text sections (empty for image and feature jobs)."""
    t = r.get("text")
    if not t:
        return []
    inputs = ", ".join(f"`{n}`" for n in t["inputs"])
    labels = " ".join(f"{i} = `{name}`;" for name, i in t["label_map"].items()).rstrip(";")
    timed = (r.get("onnx") or {}).get("latency_by_length") or {}
    by_length = timed.get("by_length") or {}
    measured = ", ".join(
        f"{v['median_ms']:.3f} / {v['p90_ms']:.3f} ms at {n} tokens ({v['runs']} runs)"
        for n, v in by_length.items()
    )
    lines = [
        "## Text input: what `student.onnx` takes",
        "",
        f"- Inputs {inputs}: int64, shape (batch, sequence), both axes dynamic; logits out.",
        f"- Tokenizer: `{t['tokenizer']}` (artifact `{t.get('tokenizer_zip', 'tokenizer.zip')}`), "
        "the teacher's own, shipped unchanged: tokenise with it, truncate to "
        f"max_length = {t['max_length']} tokens as training did, pad on the right "
        "(attention_mask marks the real tokens).",
        f"- Labels (logit index = name): {labels}. Also in the ONNX metadata (`labels`, "
        "`label_map`).",
        f"- The student as a transformers folder: `{t['student_hf_dir']}/` (loads with "
        "`AutoModelForSequenceClassification.from_pretrained`; reload max |diff| "
        f"{t['student_hf_reload_max_abs_diff']:.1e}).",
    ]
    if measured:
        lines.append(f"- CPU latency of one text (onnxruntime, {timed['threads']} intra-op thread, "
                     f"batch 1, median / p90): {measured}.")  # fmt: skip
    if t.get("token_lengths"):
        lines += ["", "Tokens per text, as the teacher's tokenizer cut them:", ""]
        lines += _lengths_table(t["token_lengths"], t["max_length"])
    lines += [
        "",
        "## Run it",
        "",
        "Tokenise a text with the shipped tokenizer and classify it:",
        "",
    ]
    return lines + snippet_lines(t)
