"""Compile cache: the same graph, options and CPU reuse the object code, skipping lowering, LLVM
optimisation and code generation.

Key: sha256 of the printed graph, every constant's bytes, the graphcnn and llvmlite versions,
the llvm backend's own source, the CPU name and features, and the code-affecting options.
An entry is three files under `$GRAPHCNN_CACHE_DIR` (default ~/.cache/graphcnn/llvm):
`<key>.o` (object code), `<key>.weights` (the packed-weights arena, raw float32 bytes) and
`<key>.json` (a small manifest: symbol, sizes). No pickle. Writes go to a temporary file then
`os.replace`, manifest last, so a reader never sees a half-written entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

import llvmlite

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
    for v in graph.constants:
        h.update(f"{v.name}:{v.type}".encode())
        h.update(v.data.tobytes())
    return h.hexdigest()


def load(key: str) -> tuple[bytes, bytes, dict] | None:
    d = cache_dir()
    try:
        manifest = json.loads((d / f"{key}.json").read_text())
        obj = (d / f"{key}.o").read_bytes()
        weights = (d / f"{key}.weights").read_bytes()
    except (OSError, ValueError):
        return None
    if manifest.get("key") != key or len(obj) != manifest.get("object_bytes") or \
            len(weights) != manifest.get("weights_file_bytes"):
        return None  # a torn or foreign entry: recompile
    return obj, weights, manifest


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store(key: str, obj: bytes, weights: bytes, manifest: dict) -> None:
    """Best effort: an unwritable cache directory never fails a compile."""
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write(d / f"{key}.o", obj)
        _atomic_write(d / f"{key}.weights", weights)
        manifest = {**manifest, "key": key, "object_bytes": len(obj),
                    "weights_file_bytes": len(weights)}
        _atomic_write(d / f"{key}.json", json.dumps(manifest, indent=1).encode())
    except OSError:
        pass
