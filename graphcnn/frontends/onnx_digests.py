"""Remembered constant digests of ONNX files: a compile from the cache must not re-hash the
~100 MB of weights of an unchanged file.

Compile caches key on every constant's bytes (graphcnn.ir.constant_digests). For a model file
the importer records each initializer's digest under the file's identity when it was read:
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
from pathlib import Path

import numpy as np
import onnx

from ..ir import Value, constant_digests, seed_constant_digest

RACY_SECONDS = 0.05
MIN_RECORD_BYTES = 8 << 20  # smaller models hash in a few ms: no record (and no clutter)
COARSE_RACY_SECONDS = 2.0  # filesystems with whole-second (or 2 s) timestamps
_SOURCE: str | None = None
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


def _source() -> str:
    global _SOURCE
    if _SOURCE is None:
        here = Path(__file__).parent
        h = hashlib.sha256(f"{np.__version__} {onnx.__version__}".encode())
        for path in sorted(here.glob("onnx*.py")) + [here.parent / "ir.py"]:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        _SOURCE = h.hexdigest()
    return _SOURCE


def identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _record_path(path: str) -> Path | None:
    base = record_dir()
    if base is None:
        return None
    return base / (hashlib.sha256(os.path.realpath(path).encode()).hexdigest() + ".json")


def _described(values: dict[str, Value]) -> dict[str, list]:
    return {name: [v.data.dtype.str, list(v.data.shape)] for name, v in values.items()}


def seed(path: str, st: os.stat_result, values: dict[str, Value]) -> bool:
    """Seed the digests of the initializers `values` (by ONNX name) from the file's record if
    it matches the file's identity `st` (taken before reading it); True if it did."""
    target = _record_path(path)
    if target is None:
        return False
    try:
        record = json.loads(target.read_text())
        if record.get("identity") != identity(st) or record.get("source") != _source() or \
                record.get("tensors") != _described(values):
            return False
        digests = {name: bytes.fromhex(d) for name, d in record["digests"].items()}
        if set(digests) != set(values):
            return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    for name, v in values.items():
        seed_constant_digest(v, digests[name])
    return True


def record_later(path: str, st: os.stat_result, read_ns: int, values: dict[str, Value]) -> None:
    """Hash the initializers (also what the next compile needs) and record them for `path`, in
    a thread (not a daemon: the record is finished before the interpreter exits). Nothing is
    recorded for a racy file or one that changed meanwhile."""
    if sum(v.data.nbytes for v in values.values()) < MIN_RECORD_BYTES:
        return
    coarse = st.st_mtime_ns % 1_000_000 == 0 and st.st_ctime_ns % 1_000_000 == 0
    margin = COARSE_RACY_SECONDS if coarse else RACY_SECONDS
    if read_ns - max(st.st_mtime_ns, st.st_ctime_ns) < margin * 1e9:
        return
    target = _record_path(path)
    if target is None:
        return

    def work() -> None:
        digests = constant_digests(list(values.values()))
        try:
            if identity(os.stat(path)) != identity(st):
                return
            record = {"path": os.path.realpath(path), "identity": identity(st),
                      "source": _source(), "tensors": _described(values),
                      "digests": {name: d.hex() for name, d in zip(values, digests)}}
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
