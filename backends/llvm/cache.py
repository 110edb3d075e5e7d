"""Compile cache: the same graph, options and CPU reuse the object code, skipping lowering, LLVM
optimisation and code generation.

Two keys name an entry, both sha256 over a canonical form of a graph (ops, attrs, names, types,
annotations), every constant's bytes, the graphcnn, llvmlite and numpy versions, the source of
graphcnn, its passes and this backend, the CPU name and features and the code-affecting options:
- `source_key` hashes the graph *as the user gave it* plus the opt level: gc.compile verifies
  the graph, then looks the key up before optimising, so a hit skips the pass pipeline too
  (the optimised graph is derived lazily if the model is asked for it, see LLVMModel.graph);
- `cache_key` hashes an already optimised graph (graphcnn.backends.llvm.compile called directly).
Constant digests are memoised per array (graphcnn/digests.py) and may already be under
way in the background when a compile starts (the ONNX importer prefetches them).

An entry is three files under `$GRAPHCNN_CACHE_DIR` (default ~/.cache/graphcnn/llvm):
`<key>.o` (the object files, back to back), `<key>.weights` (the packed-weights arena, raw
bytes, less the runs of one repeated value that the manifest lists, weights_fills.py) and `<key>.json` (a small manifest: symbol, sizes, the model's input/output
signature, and xxh3 digests of the object code, the weights and the manifest itself). No
pickle. Writes go to a temporary file then `os.replace`, manifest last, so a reader never sees
a half-written entry. A load checks every field and digest before anything is used, and
deletes a bad entry with a CacheIntegrityWarning (cache_integrity.py); `GRAPHCNN_CACHE=off`
turns the cache off, and a directory others may write to is not used. `GRAPHCNN_CACHE_MAX`
bounds the total size, least recently used entries evicted first (cache_size.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path

import llvmlite
import numpy as np

from graphcnn import version
from graphcnn.digests import constant_digests
from graphcnn.errors import CacheIntegrityWarning
from graphcnn.ir import Graph

from .cache_integrity import (
    MAX_OBJECT_BYTES,
    BadEntry,
    arena_bytes,
    check_manifest,
    digest,
    dir_is_safe,
    manifest_digest,
    read_regular,
    read_weights,
    seal,
)
from .cache_size import entries, evict, max_bytes, remove, touch
from .weights_fills import expand
from .weights_fills import split as split_fills

_SOURCE_DIGEST: str | None = None
_writers: dict[str, threading.Thread] = {}  # entries being written in the background, by key
_writers_lock = threading.Lock()
KEY_FORMAT = "2"  # bump when the key's recipe changes


def enabled() -> bool:
    """False when the environment says GRAPHCNN_CACHE=off (or 0, false, no), or injects a
    test fault into the pipeline (graphcnn/passes/fault_injection.py: keys do not see it)."""
    if os.environ.get("GRAPHCNN_TEST_FAULT"):
        return False
    return os.environ.get("GRAPHCNN_CACHE", "").strip().lower() not in ("off", "0", "false", "no")


def cache_dir() -> Path:
    base = os.environ.get("GRAPHCNN_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "graphcnn"
    return root / "llvm"


def _source_roots() -> list[Path]:
    """graphcnn (IR, ops, folding semantics), its passes and this backend: a change to any of
    them may change the code, so it must not reuse stale objects."""
    import importlib.util

    roots = [Path(version.__file__).parent, Path(__file__).parent]
    spec = importlib.util.find_spec("graphcnn.passes")  # finds it without importing it
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    return roots


def _source_digest() -> str:
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        h = hashlib.sha256()
        for root in _source_roots():
            for path in sorted(root.rglob("*.py")):
                h.update(f"{root.name}/{path.relative_to(root)}".encode() + b"\0")
                h.update(path.read_bytes())
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def fingerprint(graph: Graph) -> str:
    """A canonical, unambiguous text of everything in a graph except constant bytes: repr()
    of names, ops, attrs and types (the printer's form is for people and may be ambiguous for
    odd names or string attrs), plus the backend annotations."""
    parts = [repr(graph.name),
             repr([(v.name, v.type.shape, v.type.dtype) for v in graph.inputs])]
    parts += [repr(("const", v.name, v.type.shape, v.type.dtype)) for v in graph.constants]
    for n in graph.nodes:
        parts.append(repr((n.name, n.op, [v.name for v in n.inputs], sorted(n.attrs.items()),
                           [(v.name, v.type.shape, v.type.dtype) for v in n.outputs])))
    parts.append(repr([v.name for v in graph.outputs]))
    parts.append(json.dumps(graph.annotations, sort_keys=True, default=repr))
    return "\n".join(parts)


def io_signature(graph: Graph) -> list:
    """Input and output names, shapes and dtypes (JSON-like, as stored in a manifest)."""
    return [[[v.name, list(v.type.shape), v.type.dtype] for v in values]
            for values in (graph.inputs, graph.outputs)]


def _key(kind: str, graph: Graph, parts: list[str]) -> str:
    h = hashlib.sha256()
    for part in [KEY_FORMAT, kind, fingerprint(graph), version.__version__,
                 llvmlite.__version__, np.__version__, _source_digest(), *parts]:
        h.update(part.encode())
        h.update(b"\0")
    constants = graph.constants
    for const_digest in constant_digests(constants):
        h.update(const_digest)
    return h.hexdigest()


def cache_key(graph: Graph, cpu_name: str, features: str, options: dict) -> str:
    """The entry of an optimised graph (what the llvm backend's compile is given)."""
    return _key("optimised", graph, [cpu_name, features,
                                      json.dumps(options, sort_keys=True, default=str)])


def source_key(graph: Graph, opt_level: object, cpu_name: str, features: str,
               options: dict) -> str:
    """The entry of a graph before the pass pipeline at `opt_level` (what gc.compile is given)."""
    return _key("source", graph, [repr(opt_level), cpu_name, features,
                                  json.dumps(options, sort_keys=True, default=str)])


def weights_symbol(graph: Graph) -> str:
    """A deterministic symbol for an uncached compile, without hashing the constants."""
    return "graphcnn_weights_" + hashlib.sha256(fingerprint(graph).encode()).hexdigest()[:16]


def load(key: str) -> tuple[list[bytes], np.ndarray, dict] | None:
    """(object code, weights arena, manifest), or None for no entry, a refused cache directory
    or a bad entry. A bad entry (see _checked_entry) is deleted with a CacheIntegrityWarning,
    never executed, so the caller compiles afresh. The weights are read into private memory,
    so another process truncating the file cannot fault a live model."""
    _wait_for_writer(key)
    d = cache_dir()
    if not enabled():
        return None
    max_bytes()  # a bad GRAPHCNN_CACHE_MAX fails the compile now, not after it
    if not dir_is_safe(d):
        return None
    try:
        manifest_bytes = read_regular(d / f"{key}.json")
    except FileNotFoundError:
        return None
    except (OSError, BadEntry) as e:
        _discard(d, key, f"manifest unreadable: {e}")
        return None
    try:
        entry = _checked_entry(d, key, manifest_bytes)
    except FileNotFoundError:
        # evicted by another process while read (manifest first, cache_size.py), or a file
        # deleted by hand, or an eviction racing a store of the same key: deleting files is
        # always safe, so a miss without a warning (what is left goes, so a store replaces it)
        _discard(d, key, "", warn=False)
        return None
    except (OSError, BadEntry) as e:
        _discard(d, key, str(e))
        return None
    touch(d / f"{key}.json")  # least recently used goes first (cache_size.evict)
    return entry


def _checked_entry(d: Path, key: str, manifest_bytes: bytes
                   ) -> tuple[list[bytes], np.ndarray, dict]:
    """Parse and check the manifest fields, read the object code and weights, and check them
    against the manifest's sizes and digests; raises BadEntry naming what is wrong."""
    try:
        manifest = json.loads(manifest_bytes)
    except (ValueError, RecursionError) as e:
        raise BadEntry(f"manifest is not JSON: {e}") from None
    check_manifest(manifest, key)
    obj = read_regular(d / f"{key}.o", manifest["object_bytes"], MAX_OBJECT_BYTES)
    stored = read_weights(d / f"{key}.weights", manifest["weights_file_bytes"])
    objects = checked_parts(manifest, obj, stored)
    return objects, expand_fills(stored, manifest), manifest


def _discard(d: Path, key: str, reason: str, warn: bool = True) -> None:
    """Delete a bad entry (so the next compile stores a good one) and say so."""
    for suffix in (".json", ".o", ".weights"):
        try:
            (d / f"{key}{suffix}").unlink()
        except OSError:
            pass
    if not warn:
        return
    warnings.warn(f"graphcnn compile cache: entry {key[:16]} in {d} is bad ({reason}); "
                  "deleted it, compiling afresh", CacheIntegrityWarning, stacklevel=4)


def _atomic_write(path: Path, data) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store(key: str, objects: list[bytes], weights: np.ndarray, manifest: dict,
          background: bool = True) -> None:
    """Best effort: an unwritable cache directory never fails a compile. The object files go
    into one `.o` entry, back to back, their sizes in the manifest.

    By default the files are written by a background thread (ResNet-50's ~100 MB of weights
    take ~0.2 s to write; the model is runnable meanwhile and `weights` is read-only). A load of
    the same key waits for it, `flush()` waits for all, and the thread is no daemon: the
    interpreter finishes the entry before it exits."""
    if not enabled():
        return
    d = cache_dir()  # now: the environment may change before the writer runs
    limit = max_bytes()
    if not background:
        _store(d, key, objects, weights, manifest, limit)
        return
    writer = threading.Thread(target=_store, args=(d, key, objects, weights, manifest, limit),
                              name=f"graphcnn-cache-store-{key[:8]}")
    with _writers_lock:
        _writers[key] = writer
        writer.start()


def flush() -> None:
    """Wait until every entry being written in the background is on disk."""
    with _writers_lock:
        writers = list(_writers.values())
    for writer in writers:
        writer.join()


def _wait_for_writer(key: str) -> None:
    with _writers_lock:
        writer = _writers.get(key)
    if writer is not None and writer is not threading.current_thread():
        writer.join()


def sealed_entry(key: str, objects: list[bytes], weights, manifest: dict
                 ) -> tuple[bytes, np.ndarray, dict]:
    """The object files back to back, the weights bytes to store (the arena without its
    uniform fills, weights_fills.py) and `manifest` with the entry's sizes, fills and digests:
    what an entry stores and `checked_parts` accepts (also the saved-model file's, saved.py)."""
    obj = b"".join(objects)
    stored, fills = split_fills(weights)
    return obj, stored, seal({**manifest, "object_sizes": [len(o) for o in objects], "key": key,
                              "object_bytes": len(obj), "weights_file_bytes": len(stored),
                              "weights_fills": fills}, obj, stored)


def expand_fills(stored: np.ndarray, manifest: dict) -> np.ndarray:
    """The weights arena of a checked entry (check_manifest, checked_parts) from its stored
    bytes and its fills."""
    return expand(stored, manifest.get("weights_fills", []), arena_bytes(manifest))


def checked_parts(manifest: dict, obj: bytes, weights) -> list[bytes]:
    """The object files of an entry whose fields were checked (check_manifest), after its
    digests; raises BadEntry."""
    if digest(obj) != manifest["object_digest"]:
        raise BadEntry("object code digest differs from the manifest's")
    if digest(weights) != manifest["weights_digest"]:
        raise BadEntry("weights digest differs from the manifest's")
    if manifest_digest(manifest) != manifest["manifest_digest"]:
        raise BadEntry("manifest fields differ from those the entry was written with")
    sizes = manifest["object_sizes"]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [obj[a:a + n] for a, n in zip(starts, sizes)]


def _store(d: Path, key: str, objects: list[bytes], weights: np.ndarray, manifest: dict,
           limit: int) -> None:
    obj, weights, manifest = sealed_entry(key, objects, weights, manifest)
    try:
        d.parent.mkdir(parents=True, exist_ok=True)
        d.mkdir(mode=0o700, exist_ok=True)
        if not dir_is_safe(d):
            return
        _atomic_write(d / f"{key}.o", obj)
        _atomic_write(d / f"{key}.weights", weights)
        _atomic_write(d / f"{key}.json", json.dumps(manifest, indent=1).encode())
        evict(d, limit, keep=key)
    except OSError:
        pass
    finally:
        with _writers_lock:
            if _writers.get(key) is threading.current_thread():
                del _writers[key]


def cache_info(largest: int = 5) -> dict:
    """The llvm compile cache: its directory, entries, total bytes, limit and the `largest`
    entries (key, bytes, last use as a Unix time)."""
    d = cache_dir()
    found = entries(d)
    top = sorted(found, key=lambda e: -e.bytes)[:largest]
    return {"dir": str(d), "entries": sum(e.complete for e in found),
            "incomplete": sum(not e.complete for e in found),
            "total_bytes": sum(e.bytes for e in found), "max_bytes": max_bytes(),
            "largest": [{"key": e.key, "bytes": e.bytes, "last_used": e.last_used,
                         "complete": e.complete} for e in top]}


def clear_cache() -> dict:
    """Delete every entry of the llvm compile cache (and stores left half done); other files
    in the directory stay. Returns the directory, entries and bytes freed."""
    d = cache_dir()
    found = entries(d)
    freed = sum(remove(d, e) for e in found)
    return {"dir": str(d), "entries": sum(e.complete for e in found), "freed_bytes": freed}
