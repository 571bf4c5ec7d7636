"""A restricted unpickler for CIFAR batches: plain data only, no Python global is ever loaded.

The published CIFAR python batches store `data` as a numpy array, which a pickle can only
describe by naming numpy globals (and Python 3's protocol 2 writes bytes as a call to
_codecs.encode). Those few names are answered with inert stand-ins that
merely record their arguments; nothing is imported or called. Afterwards each record is
checked (numeric dtype, sizes that add up) and rebuilt with np.frombuffer. Every other
global (os.system, builtins.eval, ...) is refused.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from akd_core.errors import DatasetError

# Plain numeric dtypes an array record may use; object arrays hold arbitrary pickles.
_DTYPES = {f"{k}{n}" for k in "iu" for n in (1, 2, 4, 8)} | {"f2", "f4", "f8", "b1"}
_NDARRAY = object()  # stands for numpy.ndarray; not callable, so a pickle cannot invoke it


class _Dtype:
    """Stand-in for numpy.dtype(code, align, copy) + its pickled state."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        code = self.args[0] if self.args else None
        if isinstance(code, bytes):
            code = code.decode("ascii", "replace")
        if not isinstance(code, str) or code.lstrip("<>|=") not in _DTYPES:
            raise ValueError(f"array dtype {code!r} is not a plain numeric type")
        order = self.state[1] if isinstance(self.state, tuple) and len(self.state) > 1 else "|"
        if isinstance(order, bytes):
            order = order.decode("ascii", "replace")
        if order not in ("<", ">", "|", "="):
            raise ValueError(f"array byte order {order!r} is invalid")
        byteorder: Any = "=" if order == "|" else order
        return np.dtype(code.lstrip("<>|=")).newbyteorder(byteorder)


class _ArrayRecord:
    """Stand-in for an ndarray under construction: (shape, dtype, fortran order, raw bytes)."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def build(self) -> np.ndarray:
        if not (isinstance(self.state, tuple) and len(self.state) == 5):
            raise ValueError("array record is malformed")
        _, shape, dtype, fortran, raw = self.state
        return _array(raw, dtype, shape, "F" if fortran else "C")


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayRecord:
    if cls is not _NDARRAY:
        raise ValueError("only numpy.ndarray records are accepted")
    return _ArrayRecord()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _array(buf, dtype, shape, order)


def _array(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes | bytearray):
        raise ValueError("array record does not hold plain numeric bytes")
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise ValueError(f"array shape {shape!r} is invalid")
    dt = dtype.resolve()
    if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != len(raw):
        raise ValueError(f"array of shape {shape} does not match its {len(raw)} bytes")
    flat = np.frombuffer(bytes(raw), dtype=dt)
    return flat.reshape(shape, order="F" if order in ("F", b"F") else "C")


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding != "latin1":
        raise ValueError("only latin1-encoded byte strings are accepted")
    return text.encode("latin1")


_STAND_INS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _encode,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose find_class imports nothing: numpy array names get inert stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        stand_in = _STAND_INS.get((module, name))
        if stand_in is None:
            raise pickle.UnpicklingError(f"it needs the Python global '{module}.{name}'")
        return stand_in


MAX_CONTAINERS = 100_000  # a CIFAR batch holds a handful of dicts and lists


def _plain(obj: Any, depth: int = 0, memo: dict[int, Any] | None = None) -> Any:
    """Rebuild array records and refuse any type beyond dict, list, bytes, str, int, array.

    A pickle may reference one object many times (x = [x, x], nested); `memo` rebuilds each
    shared object once, so the work stays proportional to the pickle's size, not exponential.
    """
    if depth > 32:
        raise ValueError("nesting is deeper than 32 levels")
    if isinstance(obj, np.ndarray | bytes | str | int):
        return obj
    memo = {} if memo is None else memo
    if id(obj) in memo:
        return memo[id(obj)]
    if len(memo) >= MAX_CONTAINERS:
        raise ValueError(f"it holds more than {MAX_CONTAINERS} containers")
    if isinstance(obj, _ArrayRecord):
        out: Any = obj.build()
    elif isinstance(obj, list):
        out = [_plain(v, depth + 1, memo) for v in obj]
    elif isinstance(obj, dict):
        out = {_plain(k, depth + 1, memo): _plain(v, depth + 1, memo) for k, v in obj.items()}
    else:
        raise ValueError(
            f"it holds a {type(obj).__name__}; only dicts, lists, bytes, str, ints and arrays"
        )
    memo[id(obj)] = out
    return out


def safe_loads(data: bytes, what: str) -> Any:
    """Unpickle plain data (dicts, lists, bytes, str, int, numeric arrays) or raise DatasetError."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
        return _plain(obj)
    except Exception as exc:  # whatever a hostile stream triggers, it becomes one clear refusal
        raise DatasetError(
            f"{what} cannot be loaded safely: {exc}; a CIFAR batch must be a plain dict of "
            "data (numeric array or bytes) and labels (list of ints)",
            field="dataset.source",
        ) from exc
