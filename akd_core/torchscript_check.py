"""The TorchScript allow-list: a teacher's graphs may hold pure tensor operations only.

A TorchScript file is a program. Two checks keep it to arithmetic on tensors:
`refuse_load_time_code` reads the archive's code members (text) before torch.jit.load,
because `__setstate__` methods run during loading; `check_scripted_module` walks every
method of every submodule, inlined so that called functions are checked too, and
refuses any op outside the allow-list (files, storages, printing, threads, RPC, custom
classes, Python ops, unknown namespaces). The sandboxed teacher process is the second layer.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from akd_core.errors import TeacherLoadError

# Structural prim ops: constants, control flow, containers, attribute reads, type queries.
ALLOWED_PRIM = frozenset(
    {
        "prim::Constant", "prim::If", "prim::Loop", "prim::ListConstruct", "prim::ListUnpack",
        "prim::TupleConstruct", "prim::TupleUnpack", "prim::TupleIndex", "prim::TupleSlice",
        "prim::DictConstruct", "prim::GetAttr", "prim::CallMethod", "prim::RaiseException",
        "prim::unchecked_cast", "prim::unchecked_unwrap_optional", "prim::Uninitialized",
        "prim::NumToTensor", "prim::ImplicitTensorToNum", "prim::min", "prim::max", "prim::abs",
        "prim::dtype", "prim::device", "prim::layout", "prim::is_cuda", "prim::is_cpu",
        "prim::is_quantized", "prim::is_sparse", "prim::is_nested", "prim::is_meta",
        "prim::requires_grad", "prim::data", "prim::isinstance", "prim::StringIndex",
        "prim::EnumName", "prim::EnumValue", "prim::tolist", "prim::itemsize", "prim::nbytes",
        "prim::BroadcastSizes", "prim::ConstantChunk", "prim::ChunkSizes", "prim::rangelist",
        "prim::index", "prim::type", "prim::name",
    }
)  # fmt: skip
# aten ops with effects outside the tensors: files, storages, console, threads, global state.
DENIED_ATEN = frozenset(
    {
        "aten::from_file", "aten::save", "aten::set", "aten::set_", "aten::set_data",
        "aten::_print", "aten::warn", "aten::wait", "aten::record_stream", "aten::manual_seed",
        "aten::seed", "aten::_cufft_set_plan_cache_max_size", "aten::_test_warn_in_autograd",
        "aten::pin_memory", "aten::_pin_memory", "aten::storage_offset", "aten::_set_item",
    }
)  # fmt: skip
ACCEPTED = (
    "accepted are aten:: tensor operations (math, nn, shapes; not file, storage, print, "
    "warn, thread or seed ops) and prim:: constants, control flow, lists, tuples and dicts"
)
# Refused in scripted code though harmless in a forward pass: say how to export without them.
_HINTED = ("aten::warn", "prim::Print", "prim::Enter", "prim::Exit", "prim::CreateObject")
HINT = (
    " (torch.jit.trace records only tensor operations; a teacher's forward needs no "
    "`with torch.no_grad()` nor warnings: the service runs it without gradients)"
)
CUSTOM_CLASS_PREFIX = "__torch__.torch.classes."
_SETSTATE = re.compile(rb"\bdef\s+__setstate__\b")
_CODE_MEMBER = re.compile(r"(^|/)code/.*\.py$")
_SHOWN = 6  # offending ops an error message lists


def refuse_load_time_code(path: Path) -> None:
    """Refuse an archive whose code defines `__setstate__` (it would run inside torch.jit.load)."""
    with zipfile.ZipFile(path) as zf:  # members were checked (sizes, links) by the caller
        for info in zf.infolist():
            if _CODE_MEMBER.search(info.filename) and _SETSTATE.search(zf.read(info)):
                raise TeacherLoadError(
                    f"{path.name!r} defines __setstate__ in {info.filename}, which TorchScript "
                    "runs while loading; export the teacher without custom state handling "
                    f"(torch.jit.script or torch.jit.trace of a plain nn.Module); {ACCEPTED}",
                    field="teacher.source",
                )


def _op_problem(node: torch._C.Node) -> str | None:
    """Why this node is refused, or None when it is a pure tensor operation."""
    kind = node.kind()
    for value in (*node.inputs(), *node.outputs()):
        if str(value.type()).startswith(CUSTOM_CLASS_PREFIX):
            return f"{kind} on custom class {value.type()}"
    if kind.startswith("aten::"):
        # A Storage argument means raw memory or a file mapping, whatever the op's name.
        return kind if kind in DENIED_ATEN or "Storage" in node.schema() else None
    return None if kind in ALLOWED_PRIM else kind


def _walk(block: torch._C.Block) -> Iterator[torch._C.Node]:
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _walk(inner)


def _methods(module: torch.jit.ScriptModule) -> Iterator[tuple[str, torch._C.Graph]]:
    """Every method of every submodule, as (qualified name, inlined copy of its graph)."""
    for prefix, sub in module.named_modules():
        c = getattr(sub, "_c", None)
        if c is None:
            raise TeacherLoadError(
                f"submodule {prefix or '<root>'!r} is not TorchScript; {ACCEPTED}",
                field="teacher.source",
            )
        for name in c._method_names():
            graph = c._get_method(name).graph.copy()
            torch._C._jit_pass_inline(graph)  # called functions and methods become visible
            yield (f"{prefix}.{name}" if prefix else name), graph


def check_scripted_module(module: torch.jit.ScriptModule) -> None:
    """Raise TeacherLoadError naming each op outside the allow-list and the method holding it."""
    found: dict[str, set[str]] = {}
    for where, graph in _methods(module):
        for node in _walk(graph.block()):
            problem = _op_problem(node)
            if problem is not None:
                found.setdefault(problem, set()).add(where)
    if found:
        listed = [f"{op} (in {', '.join(sorted(w))})" for op, w in sorted(found.items())]
        more = f", ... ({len(listed)} in all)" if len(listed) > _SHOWN else ""
        hint = HINT if any(op.startswith(_HINTED) for op in found) else ""
        raise TeacherLoadError(
            f"the TorchScript teacher uses operations outside the allow-list: "
            f"{'; '.join(listed[:_SHOWN])}{more}; {ACCEPTED}{hint}",
            field="teacher.source",
        )
