"""Compile cache: the same graph, options and CPU reuse the object code, skipping lowering, LLVM
optimisation and code generation.

Key: sha256 of the printed graph, every constant's bytes, the graphcnn and llvmlite versions,
the llvm backend's own source, the CPU name and features, and the code-affecting options.
An entry is three files under `$GRAPHCNN_CACHE_DIR` (default ~/.cache/graphcnn/llvm):
`<key>.o` (the object files, back to back), `<key>.weights` (the packed-weights arena, raw float32 bytes) and
`<key>.json` (a small manifest: symbol, sizes). No pickle. Writes go to a temporary file then
`os.replace`, manifest last, so a reader never sees a half-written entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import llvmlite
import numpy as np

from graphcnn.ir import Graph

_SOURCE_DIGEST: str | None = None


def cache_dir() -> Path:
    base = os.environ.get("GRAPHCNN_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "graphcnn"
    return root / "llvm"


def _source_digest() -> str:
    """The backend's own code: a changed kernel must not reuse stale objects."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        h = hashlib.sha256()
        here = Path(__file__).parent
        for path in sorted(here.rglob("*.py")):
            h.update(str(path.relative_to(here)).encode())
            h.update(path.read_bytes())
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def _version() -> str:
    try:
        return metadata.version("graphcnn")
    except metadata.PackageNotFoundError:
        return "unknown"


def cache_key(graph: Graph, cpu_name: str, features: str, options: dict) -> str:
    h = hashlib.sha256()
    for part in (str(graph), _version(), llvmlite.__version__, _source_digest(), cpu_name,
                 features, json.dumps(options, sort_keys=True, default=str)):
        h.update(part.encode())
        h.update(b"\0")
    constants = list(graph.constants)
    for v in constants:
        h.update(f"{v.name}:{v.type}".encode())
    # the weights (~100 MB for ResNet-50) dominate: one digest per constant, on two threads
    # (hashlib drops the GIL on big buffers), no copy of the arrays
    with ThreadPoolExecutor(max_workers=2) as pool:
        for digest in pool.map(_digest, [v.data for v in constants]):
            h.update(digest)
    return h.hexdigest()


def _digest(array: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8)).digest()


def load(key: str) -> tuple[list[bytes], np.ndarray, dict] | None:
    """(object code, weights arena, manifest) or None. The arena is a read-only memory map of
    the file (page aligned, read lazily, shared page cache; os.replace by a later store leaves
    the mapped inode intact)."""
    d = cache_dir()
    try:
        manifest = json.loads((d / f"{key}.json").read_text())
        obj = (d / f"{key}.o").read_bytes()
        path = d / f"{key}.weights"
        size = path.stat().st_size
        weights = np.memmap(path, dtype=np.uint8, mode="r") if size else \
            np.zeros(0, np.uint8)
    except (OSError, ValueError):
        return None
    if manifest.get("key") != key or len(obj) != manifest.get("object_bytes") or \
            len(weights) != manifest.get("weights_file_bytes"):
        return None  # a torn or foreign entry: recompile
    sizes = manifest.get("object_sizes", [len(obj)])
    if sum(sizes) != len(obj):
        return None
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [obj[a:a + n] for a, n in zip(starts, sizes)], weights, manifest


def _atomic_write(path: Path, data) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store(key: str, objects: list[bytes], weights: np.ndarray, manifest: dict) -> None:
    """Best effort: an unwritable cache directory never fails a compile. The object files go
    into one `.o` entry, back to back, their sizes in the manifest."""
    d = cache_dir()
    obj = b"".join(objects)
    manifest = {**manifest, "object_sizes": [len(o) for o in objects]}
    try:
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write(d / f"{key}.o", obj)
        _atomic_write(d / f"{key}.weights", weights)
        manifest = {**manifest, "key": key, "object_bytes": len(obj),
                    "weights_file_bytes": len(weights)}
        _atomic_write(d / f"{key}.json", json.dumps(manifest, indent=1).encode())
    except OSError:
        pass
