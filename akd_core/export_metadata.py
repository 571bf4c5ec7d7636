"""metadata_props of student.onnx: provenance (hashes) and the input contract, as strings.

A deployment reads everything it needs from the file itself: which spec, teacher and data
made it, and how to feed it. The hashes are the ones the run already computed (the
teacher's and the dataset file's sha256), not computed again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from akd_core import __version__
from akd_core.data import Dataset
from akd_core.export_contract import InputContract
from akd_core.spec import JobSpec


def spec_sha256(spec: JobSpec) -> str:
    """sha256 of the spec as run (defaults filled in), in canonical JSON (sorted keys)."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def student_metadata(
    spec: JobSpec, ds: Dataset, teacher_sha256: str, contract: InputContract
) -> dict[str, str]:
    """Every metadata_props entry of student.onnx (keys and values are strings)."""
    return {
        "akd.version": __version__,
        "akd.method": spec.method,
        "akd.student_arch": spec.student.arch,
        "akd.spec_sha256": spec_sha256(spec),
        "akd.teacher_sha256": teacher_sha256,
        # The dataset file's sha256 ("" for builtin data, which has no file).
        "akd.dataset_sha256": ds.source_sha256 or "",
        "akd.dataset_fingerprint": ds.fingerprint,  # file + split/normalisation settings
        "akd.input_contract": _json(contract.to_dict()),
        "labels": json.dumps(ds.classes),
        "input_name": contract.name,
        "input_shape": json.dumps(contract.shape),
        "input_dtype": contract.dtype,
        "input_layout": contract.layout,
        "input_value_range": json.dumps(contract.value_range),
        "preprocessing_in_graph": "all" if contract.raw_input else "standardize only",
        "preprocessing": json.dumps(ds.normalization),
    }
