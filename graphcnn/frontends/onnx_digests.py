"""Remembered constant digests of ONNX files: a compile from the cache must not re-hash the
~100 MB of weights of an unchanged file.

Compile caches key on every constant's bytes (graphcnn.digests.constant_digests). For a model
file the importer records each initializer's digest under the file's identity when it was read:
device, inode, size, mtime and ctime in ns. ctime changes with every write or metadata change
and cannot be set by a user (unlike mtime: `touch -d`, `tar`, `rsync -t`), and a replaced file
has a new inode, so the identity changes whenever the content can have. A later import of a
file with the same identity seeds the digests instead of computing them.

Racy files (git's "racy clean" problem): a write within the same timestamp tick as the last
one leaves the identity unchanged, so nothing is recorded for a file changed less than
RACY_SECONDS before it was read (coarser than any local filesystem's tick; whole-second
timestamps get 2 s). The record also names the importer's and the IR's source and the numpy and
onnx versions: a changed decoder may produce other arrays from the same file.

Records are small JSON files under `$GRAPHCNN_CACHE_DIR/onnx-digests` (default
~/.cache/graphcnn), written atomically, best effort: an unwritable directory only means hashing.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..digests import constant_digests, seed_constant_digest
from ..ir import Value
from .file_data import file_identity

RACY_SECONDS = 0.05
MIN_RECORD_BYTES = 8 << 20  # smaller models hash in a few ms: no record (and no clutter)
COARSE_RACY_SECONDS = 2.0  # filesystems with whole-second (or 2 s) timestamps
_SOURCE: str | None = None
_GRAPH_SOURCE: str | None = None
_recorders: list[threading.Thread] = []


def record_dir() -> Path | None:
    """Where the records live; None without a cache dir or a home to put one in (then nothing
    is seeded or recorded: importing must never fail for want of a cache)."""
    base = os.environ.get("GRAPHCNN_CACHE_DIR")
    try:
        root = Path(base) if base else Path.home() / ".cache" / "graphcnn"
    except RuntimeError:  # no $HOME and no passwd entry (e.g. a container's numeric user)
        return None
    return root / "onnx-digests"


def _onnx_package() -> bytes:
    """What identifies the installed onnx package, without importing it (~50 ms): its
    `__init__.py` and `version.py` and the name of its dist-info directory (name-version)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("onnx")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return b"no onnx"
    package = Path(spec.origin).parent
    h = hashlib.sha256(spec.origin.encode())
    for name in ("__init__.py", "version.py"):
        try:
            h.update(name.encode() + b"\0" + (package / name).read_bytes())
        except OSError:
            h.update(name.encode() + b"\0missing")
    try:
        dists = sorted(n for n in os.listdir(package.parent)
                       if n.lower().startswith("onnx-") and n.endswith((".dist-info", ".egg-info")))
    except OSError:
        dists = []
    h.update("\0".join(dists).encode())
    return h.hexdigest().encode()


def _source() -> str:
    """The decoder's identity: what turns the file's bytes into the initializers' arrays."""
    global _SOURCE
    if _SOURCE is None:
        here = Path(__file__).parent
        h = hashlib.sha256(f"{np.__version__} ".encode() + _onnx_package())
        core = [here.parent / name for name in ("ir.py", "tensor_type.py", "digests.py")]
        for path in sorted(here.glob("onnx*.py")) + [here / "file_data.py"] + core:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        _SOURCE = h.hexdigest()
    return _SOURCE


def graph_source() -> str:
    """The importer's identity for a whole graph (an import snapshot): the decoder's, plus all
    of graphcnn's source (op schemas, shape rules and folding shape the imported graph)."""
    global _GRAPH_SOURCE
    if _GRAPH_SOURCE is None:
        root = Path(__file__).parent.parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        _GRAPH_SOURCE = h.hexdigest()
    return hashlib.sha256(f"{_source()} {_GRAPH_SOURCE}".encode()).hexdigest()


identity = file_identity


def _record_path(path: str) -> Path | None:
    base = record_dir()
    if base is None:
        return None
    return base / (hashlib.sha256(os.path.realpath(path).encode()).hexdigest() + ".json")


def _described(values: dict[str, Value]) -> dict[str, list]:
    return {name: [v.data.dtype.str, list(v.data.shape)] for name, v in values.items()}


def read_record(path: str) -> dict | None:
    """The file's record as stored (any JSON object; a caller checks what it uses), or None."""
    target = _record_path(path)
    if target is None:
        return None
    try:
        record = json.loads(target.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def seed(path: str, st: os.stat_result, values: dict[str, Value]) -> dict | None:
    """Seed the digests of the initializers `values` (by ONNX name) from the file's record if
    it matches the file's identity `st` (taken before reading it); the record if it did."""
    record = read_record(path)
    if record is None:
        return None
    try:
        if record.get("identity") != identity(st) or record.get("source") != _source() or \
                record.get("tensors") != _described(values):
            return None
        digests = {name: bytes.fromhex(d) for name, d in record["digests"].items()}
        if set(digests) != set(values):
            return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    for name, v in values.items():
        seed_constant_digest(v, digests[name])
    return record


def recordable(path: str, st: os.stat_result, read_ns: int, values: dict[str, Value]) -> bool:
    """Whether `path`'s initializers `values` get a record: large enough, not a racy file, and
    a cache directory to put it in."""
    if sum(v.data.nbytes for v in values.values()) < MIN_RECORD_BYTES:
        return False
    coarse = st.st_mtime_ns % 1_000_000 == 0 and st.st_ctime_ns % 1_000_000 == 0
    margin = COARSE_RACY_SECONDS if coarse else RACY_SECONDS
    if read_ns - max(st.st_mtime_ns, st.st_ctime_ns) < margin * 1e9:
        return False
    return _record_path(path) is not None


def record_later(path: str, st: os.stat_result, read_ns: int, values: dict[str, Value],
                 snapshot: Callable[[], dict | None] | None = None, old: dict | None = None
                 ) -> None:
    """Hash the initializers (also what the next compile needs) and record them for `path`,
    with an import snapshot if `snapshot` (onnx_snapshot.encode's) gives one, in a thread (not
    a daemon: the record is finished before the interpreter exits). Nothing is recorded for a
    racy file or one that changed meanwhile, nor if the record `old` (seeded from) already
    holds the same snapshot."""
    if not recordable(path, st, read_ns, values):
        return
    target = _record_path(path)
    if target is None:
        return

    def work() -> None:
        digests = constant_digests(list(values.values()))
        taken = snapshot() if snapshot is not None else None
        if taken is not None:  # its file constants take their digests from the record
            taken["source"] = graph_source()
        if old is not None and (taken is None or old.get("snapshot") == taken):
            return
        try:
            if identity(os.stat(path)) != identity(st):
                return
            record = {"path": os.path.realpath(path), "identity": identity(st),
                      "source": _source(), "tensors": _described(values),
                      "digests": {name: d.hex() for name, d in zip(values, digests)}}
            if taken is not None:
                record["snapshot"] = taken
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(record, f)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass

    thread = threading.Thread(target=work, name="graphcnn-onnx-digests")
    _recorders[:] = [t for t in _recorders if t.is_alive()] + [thread]
    thread.start()


def wait() -> None:
    """Wait for the records being written (tests)."""
    for thread in _recorders:
        thread.join()
