"""A text teacher as a checked local folder: unpacked, refused if it holds pickles or code.

Two kinds: `hf`, a transformers model folder, is data only when its weights are
safetensors and its config names a model type transformers ships (no `auto_map`, which
would import code from the folder); `onnx`, one .onnx file with the tokenizer files beside
it (config.json optional). Everything here reads bytes and JSON; nothing is imported from
the folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from akd_core.archives import check_archive, read_members, safe_extract
from akd_core.errors import AKDError, TeacherLoadError
from akd_core.fileio import sha256_of
from akd_core.limits import Limits

FIELD = "teacher.source"
# Weights stored as Python pickles (or other formats transformers would unpickle or convert).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".h5", ".msgpack", ".joblib")
# Files that are code: transformers runs them only with trust_remote_code, which is never on.
CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".dll", ".dylib", ".sh")
TOKENIZER_FILE = "tokenizer.json"  # the fast tokenizer: JSON read by the Rust `tokenizers`
MAX_CONFIG_BYTES = 1 << 20
# transformers model types a teacher may have (hf_teacher.SANDBOX_FAMILIES, kept torch-free here).
SUPPORTED_FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
FolderKind = Literal["hf", "onnx"]
ONNX_LAYOUT = (
    "an ONNX text teacher is a folder (zip or tar) holding one .onnx file (inputs input_ids, "
    "attention_mask[, token_type_ids]) and its tokenizer files: tokenizer.save_pretrained(dir)"
)
CONVERT_HINT = (
    "load it once where you trust it and save it with safetensors weights: "
    "model.save_pretrained(dir, safe_serialization=True); tokenizer.save_pretrained(dir)"
)


@dataclass(frozen=True)
class HfFolder:
    """A checked transformers folder: where it is, its config and its fingerprint (sha256)."""

    root: Path
    config: dict[str, Any]
    fingerprint: str
    size_bytes: int
    kind: FolderKind = "hf"

    @property
    def model_type(self) -> str:
        """The config's model_type, e.g. bert or roberta."""
        return str(self.config.get("model_type", ""))

    @property
    def onnx_file(self) -> Path:
        """The single .onnx file of an `onnx` folder."""
        return next(self.root.glob("*.onnx"))


def _refuse(message: str) -> TeacherLoadError:
    return TeacherLoadError(message, field=FIELD)


def _json_text(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_CONFIG_BYTES:
        raise _refuse(f"{what} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise _refuse(f"{what} must hold a JSON object")
    return parsed


def _json_file(path: Path, what: str) -> dict[str, Any]:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise _refuse(f"{what} is larger than {MAX_CONFIG_BYTES} bytes")
    return _json_text(path.read_bytes(), what)


def _marker(kind: FolderKind) -> str:
    """The file that marks a model folder's top: config.json (hf) or tokenizer.json (onnx)."""
    return "config.json" if kind == "hf" else TOKENIZER_FILE


def _model_root(folder: Path, kind: FolderKind) -> Path:
    """The folder holding the marker file: the folder itself or its single sub-folder."""
    if (folder / _marker(kind)).is_file():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and (subs[0] / _marker(kind)).is_file():
        return subs[0]
    raise _refuse(NO_CONFIG if kind == "hf" else f"no {TOKENIZER_FILE} found; {ONNX_LAYOUT}")


NO_CONFIG = (
    "the teacher has no config.json at its top level (or in its single folder); an 'hf' "
    "teacher is what model.save_pretrained(dir) writes"
)


def check_names(names: list[str], kind: FolderKind = "hf") -> None:
    """The folder's relative file names: no pickles, no code, the weights and tokenizer.json."""
    for rel in names:
        base = rel.rsplit("/", 1)[-1].lower()
        if base.endswith(PICKLE_SUFFIXES):
            raise _refuse(
                f"{rel!r} holds pickled weights, which could run code when loaded and are never "
                f"accepted; {CONVERT_HINT}"
            )
        if base.endswith(CODE_SUFFIXES):
            raise _refuse(f"{rel!r} is code; custom model code is never run (no trust_remote_code)")
    if kind == "onnx":
        models = [n for n in names if n.lower().endswith(".onnx")]
        if len(models) != 1 or "/" in models[0]:
            found = ", ".join(models[:5]) or "none"
            raise _refuse(f"found {len(models)} .onnx files at the top ({found}); {ONNX_LAYOUT}")
    elif not any(n.endswith(".safetensors") for n in names):
        raise _refuse(f"the teacher folder has no .safetensors weights; {CONVERT_HINT}")
    if TOKENIZER_FILE not in names:
        raise _refuse(
            f"the teacher folder has no {TOKENIZER_FILE} (the tokenizer defines the input); "
            "save a fast tokenizer beside the model: tokenizer.save_pretrained(dir)"
        )


def check_configs(config: dict[str, Any], tokenizer_config: dict[str, Any],
                  kind: FolderKind = "hf") -> None:  # fmt: skip
    """No remote code (auto_map) and (hf) a model type this service loads."""
    for name, cfg in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        if "auto_map" in cfg:
            raise _refuse(
                f"{name} has an auto_map: the model needs custom code (trust_remote_code), which "
                "is never run; use a model type that transformers ships (bert, roberta, ...)"
            )
    if kind == "hf" and config.get("model_type") not in SUPPORTED_FAMILIES:
        raise _refuse(
            f"config.json has model_type {config.get('model_type')!r}; supported: "
            f"{', '.join(SUPPORTED_FAMILIES)} (BERT-, RoBERTa- and MiniLM-style encoders)"
        )


def check_folder(root: Path, kind: FolderKind = "hf") -> dict[str, Any]:
    """Refuse pickled weights, code files, remote-code configs and a missing tokenizer; the config."""
    files = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
    for p in files:
        if p.is_symlink():
            raise _refuse(f"{p.relative_to(root).as_posix()!r} is a symbolic link; the teacher "
                          "folder must hold plain files")  # fmt: skip
    check_names([p.relative_to(root).as_posix() for p in files], kind)
    cfg_path = root / "config.json"  # optional beside an ONNX file (it gives vocab_size)
    config = _json_file(cfg_path, "config.json") if kind == "hf" or cfg_path.is_file() else {}
    tok_path = root / "tokenizer_config.json"
    tok = _json_file(tok_path, tok_path.name) if tok_path.is_file() else {}
    check_configs(config, tok, kind)
    return config


def check_hf_archive(path: Path, limits: Limits, kind: FolderKind = "hf") -> dict[str, Any]:
    """The same checks on a zip or tar, member by member, without extracting it; the config."""
    marker = _marker(kind)
    try:
        members = [m.name for m in check_archive(path, limits) if not m.is_dir]
        roots = [n.removesuffix(marker) for n in members
                 if n == marker or n.endswith(f"/{marker}")]  # fmt: skip
        root = (
            ""
            if "" in roots
            else (roots[0] if len(roots) == 1 and roots[0].count("/") == 1 else None)
        )
        if root is None:
            raise _refuse(NO_CONFIG if kind == "hf" else f"no {marker} found; {ONNX_LAYOUT}")
        wanted = {f"{root}config.json", f"{root}tokenizer_config.json"}
        found = read_members(path, lambda n: n in wanted, limits)
    except TeacherLoadError:
        raise
    except AKDError as exc:
        raise _refuse(f"{path.name!r} was refused: {exc.message}") from None
    check_names([n.removeprefix(root) for n in members if n.startswith(root)], kind)
    cfg = found.get(f"{root}config.json")
    config = _json_text(cfg, "config.json") if cfg is not None else {}  # hf: found by its marker
    tok = found.get(f"{root}tokenizer_config.json")
    tok_config = _json_text(tok, "tokenizer_config.json") if tok is not None else {}
    check_configs(config, tok_config, kind)
    return config


def folder_fingerprint(root: Path) -> str:
    """sha256 over the folder's relative file names and their contents' sha256, sorted."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root).as_posix()}\0{sha256_of(p)}\n".encode())
    return h.hexdigest()


# What a hub teacher needs: config, tokenizer and vocabulary files, safetensors weights. Pickles
# and code that a cached snapshot may also hold (from other downloads) are never copied.
HUB_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model")


def _from_hub(source: str, work_dir: Path) -> Path:
    """A hub model's data files (HUB_PATTERNS) as plain files in work_dir/hub.

    snapshot_download uses the hub cache (HF_HOME / HF_HUB_CACHE) and, with HF_HUB_OFFLINE=1,
    only the cache: the snapshot's refs/main names the revision. The snapshot's files are
    links into the cache's blobs; they are copied as plain files so the checked folder is
    self-contained.
    """
    repo_id = source.removeprefix("hf:")
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(repo_id, allow_patterns=list(HUB_PATTERNS)))
    except Exception as exc:  # offline cache miss, network, auth, unknown repo: one message
        raise TeacherLoadError(
            f"the hub model {repo_id!r} is not available here ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); on a machine without a hub, put it in the "
            "hub cache (HF_HOME) first, or upload the model folder as a zip or tar (or give "
            "file:<folder> to the CLI)",
            field=FIELD,
        ) from None
    dest = work_dir / "hub"
    shutil.rmtree(dest, ignore_errors=True)
    for p in sorted(snapshot.rglob("*")):
        if p.is_file() and any(p.match(pattern) for pattern in HUB_PATTERNS):
            target = dest / p.relative_to(snapshot)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)  # follows the blob link: a plain file
    return dest


def open_hf_folder(source: str, path: Path | None, work_dir: Path, limits: Limits,
                   kind: FolderKind = "hf") -> HfFolder:  # fmt: skip
    """Unpack (zip/tar, member by member), download (hf:) or take a folder; check it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if source.startswith("hf:"):
        folder = _from_hub(source, work_dir)
    elif path is None:
        raise _refuse(f"{source!r} does not name a teacher file or folder")
    elif path.is_dir():
        folder = path
    elif path.is_file():
        dest = work_dir / "teacher"
        if dest.exists():
            shutil.rmtree(dest)
        try:
            folder = safe_extract(path, dest, limits)
        except AKDError as exc:
            raise _refuse(f"{path.name!r} was refused: {exc.message}") from None
    else:
        raise _refuse(f"teacher {path} does not exist")
    root = _model_root(folder, kind)
    config = check_folder(root, kind)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return HfFolder(root, config, folder_fingerprint(root), size, kind)
