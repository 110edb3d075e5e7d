"""Saved models: `cm.save(path)` and `gc.load(path)` for the llvm target, and its pickles.

A saved model is one compile-cache entry in one file, so it shares the cache's manifest and
checks (cache.sealed_entry, cache_integrity.check_manifest, cache.checked_parts):

    MAGIC (8 bytes) | manifest length (8 bytes, little-endian) | manifest (JSON)
    | object code (the object files back to back) | packed weights arena (less its
      uniform fills, which the manifest lists: weights_fills.py)

The manifest adds what a load needs without the graph: the model's name and input/output
names, shapes and dtypes (`io`), the CPU it was built for (`cpu` asked, `cpu_name`,
`features`) and the graphcnn version. A load reads and checks everything (sizes, digests,
field types, nothing after the weights) before any code is mapped, and refuses with a
ModelLoadError a file that is not one, is truncated or corrupted, comes from another graphcnn
version (the code calls this version's thread pool) or needs CPU features this one lacks.
No pickle inside: a file from elsewhere is data, never code to run in Python.
"""
from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np

from graphcnn import version
from graphcnn.errors import ModelLoadError
from graphcnn.ir import TensorType
from graphcnn.runtime import Signature

from .cache import checked_parts, expand_fills, sealed_entry
from .cache_integrity import (
    MAX_MANIFEST_BYTES,
    MAX_OBJECT_BYTES,
    MAX_WEIGHTS_BYTES,
    BadEntry,
    check_manifest,
)
from .runtime import LLVMModel, default_threads

MAGIC = b"GCMODEL\x01"
KEY = "graphcnn-saved-model"  # the manifest's `key` field: no cache key names a saved file
FORMAT = 1
DTYPES = ("float32", "int64", "int32", "bool")  # what a graph input or output may be


def manifest_of(model: LLVMModel) -> dict:
    """The fields a load needs, from the model (the cache-only ones are left out)."""
    from .codegen import cpu_and_features

    cpu_name, features = cpu_and_features(model.cpu)
    m = model.manifest
    return {"format": FORMAT, "graphcnn_version": version.__version__,
            "name": model._name, "cpu": cpu_name, "cpu_option": model.cpu,
            "features": features, "options": dict(model.options),
            "instrumented": model._profile_counters is not None,
            "weights_symbol": m["weights_symbol"], "workspace_bytes": m["workspace_bytes"],
            "weights_bytes": m["weights_bytes"], "kernels": m["kernels"],
            "io": [[[n, list(t.shape), t.dtype] for n, t in types]
                   for types in model._signature[1:]]}


def write(model: LLVMModel, out: BinaryIO) -> None:
    obj, weights, manifest = sealed_entry(KEY, model._objects, model._weights,
                                          manifest_of(model))
    text = json.dumps(manifest, separators=(",", ":")).encode()
    out.write(MAGIC + len(text).to_bytes(8, "little") + text)
    out.write(obj)
    out.write(memoryview(weights))


def save(model: LLVMModel, path: str | os.PathLike) -> None:
    """Write the file through a temporary one, so a reader never sees half of it."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ModelLoadError(f"cannot save to {path}: directory {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(model, f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_method(model: LLVMModel, path: str | os.PathLike) -> None:
    """cm.save(path): one file with the object code, the packed weights and the metadata;
    gc.load(path) runs it without recompiling, on a CPU with this build's features."""
    save(model, path)


def reduce_method(model: LLVMModel):
    """Pickles as the bytes of a saved file (threads as asked), loaded the same way."""
    return loads, (dumps(model), model._requested_threads)


def dumps(model: LLVMModel) -> bytes:
    buf = io.BytesIO()
    write(model, buf)
    return buf.getvalue()


# ----- reading ---------------------------------------------------------------------------------
def _exactly(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BadEntry(f"truncated: {what} ends after {len(data)} of {n} bytes")
    return data


def _aligned(f: BinaryIO, n: int) -> np.ndarray:
    """The weights arena read straight into 64-byte aligned, read-only memory."""
    raw = np.empty(n + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    arena = raw[start:start + n]
    view, done = memoryview(arena), 0
    while done < n:
        got = f.readinto(view[done:])
        if not got:
            raise BadEntry(f"truncated: the weights end after {done} of {n} bytes")
        done += got
    arena.flags.writeable = False
    return arena


def _signature(manifest: dict) -> Signature:
    """The model's name and typed inputs/outputs from the manifest's `name` and `io`."""
    name, sides = manifest.get("name"), manifest.get("io")
    if not isinstance(name, str) or not isinstance(sides, list) or len(sides) != 2:
        raise BadEntry("manifest fields 'name' or 'io' malformed")
    out = []
    for side in sides:
        if not isinstance(side, list):
            raise BadEntry("manifest field 'io' malformed")
        types = []
        for entry in side:
            ok = (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                  and isinstance(entry[1], list) and entry[2] in DTYPES
                  and all(type(d) is int and d >= 0 for d in entry[1]))
            if not ok:
                raise BadEntry(f"manifest io entry {entry!r} malformed")
            types.append((entry[0], TensorType(tuple(entry[1]), entry[2])))
        out.append(types)
    return name, out[0], out[1]


def read(f: BinaryIO) -> tuple[list[bytes], np.ndarray, dict]:
    """(object files, weights arena, manifest) of a saved model, every part checked;
    raises BadEntry."""
    if f.read(len(MAGIC)) != MAGIC:
        raise BadEntry("not a graphcnn saved model (no GCMODEL header)")
    n = int.from_bytes(_exactly(f, 8, "the header"), "little")
    if n > MAX_MANIFEST_BYTES:
        raise BadEntry(f"manifest length {n} exceeds {MAX_MANIFEST_BYTES}")
    try:
        manifest = json.loads(_exactly(f, n, "the manifest"))
    except (ValueError, RecursionError) as e:
        raise BadEntry(f"manifest is not JSON: {e}") from None
    check_manifest(manifest, KEY)
    for field in ("cpu_option", "features", "graphcnn_version"):
        if not isinstance(manifest.get(field), str):
            raise BadEntry(f"manifest field {field!r} malformed")
    if not isinstance(manifest.get("options"), dict) or manifest.get("format") != FORMAT:
        raise BadEntry("manifest fields 'options' or 'format' malformed")
    if manifest["object_bytes"] > MAX_OBJECT_BYTES or \
            manifest["weights_file_bytes"] > MAX_WEIGHTS_BYTES:
        raise BadEntry("object or weights size out of range")
    obj = _exactly(f, manifest["object_bytes"], "the object code")
    weights = _aligned(f, manifest["weights_file_bytes"])
    if f.read(1):
        raise BadEntry("bytes after the weights (not one saved model)")
    return checked_parts(manifest, obj, weights), expand_fills(weights, manifest), manifest


def check_cpu(manifest: dict) -> None:
    """Refuse code built for features this CPU lacks (it would die of SIGILL mid-call)."""
    from .codegen import cpu_and_features

    host, host_features = cpu_and_features("host")
    have = {f for f in host_features.split(",") if f.startswith("+")}
    need = {f for f in manifest["features"].split(",") if f.startswith("+")}
    if need - have:
        raise ModelLoadError(
            f"built for CPU {manifest['cpu']} with features this CPU ({host}) lacks: "
            f"{', '.join(sorted(need - have))}; compile it here, or for a portable file "
            "compile with cpu='x86-64-v3' before saving")
    if not need and manifest["cpu"] not in ("x86-64", host):
        raise ModelLoadError(f"built for CPU {manifest['cpu']}, this one is {host}: compile "
                             "it here, or with cpu='x86-64-v3' for a portable file")


def model_from(objects: list[bytes], weights: np.ndarray, manifest: dict,
               threads: int | None, source: str) -> LLVMModel:
    if manifest["graphcnn_version"] != version.__version__:
        raise ModelLoadError(f"{source}: saved by graphcnn {manifest['graphcnn_version']}, "
                             f"this is {version.__version__}: compile the model again")
    check_cpu(manifest)
    signature = _signature(manifest)

    def no_graph():
        raise ModelLoadError(f"{source}: a loaded model keeps its code, not its graph; "
                             "compile the graph again for profile, export_library or graph")

    if threads is not None and (type(threads) is not int or threads < 1):
        raise ModelLoadError(f"threads must be a positive int, got {threads!r}")
    return LLVMModel(None, objects, weights, manifest, threads or default_threads(),
                     manifest["cpu_option"], manifest["options"], True,
                     manifest.get("instrumented") is True, derive_graph=no_graph,
                     signature=signature)


def load(path: str | os.PathLike, threads: int | None = None) -> LLVMModel:
    """The model saved at `path` (cm.save), ready to run; see the module docstring."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ModelLoadError(f"{source}: not a regular file")
            parts = read(f)
    except FileNotFoundError:
        raise ModelLoadError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ModelLoadError(f"{source}: is a directory, not a saved model") from None
    except OSError as e:
        raise ModelLoadError(f"{source}: cannot read: {e}") from None
    except BadEntry as e:
        raise ModelLoadError(f"{source}: {e}") from None
    return model_from(*parts, threads, source)


def loads(data: bytes, threads: int | None = None) -> LLVMModel:
    """The model of a saved file's bytes (what a pickle of an LLVMModel holds)."""
    try:
        parts = read(io.BytesIO(data))
    except BadEntry as e:
        raise ModelLoadError(f"pickled llvm model: {e}") from None
    return model_from(*parts, threads, "pickled llvm model")


__all__ = ["dumps", "load", "loads", "save"]
