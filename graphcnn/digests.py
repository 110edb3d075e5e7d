"""sha256 digests of constant arrays, memoised per array: what compile caches key on.

Beside the IR, not in it (the IR holds no caches or threads): the llvm compile cache, CSE and
the ONNX importer's digest records (graphcnn/frontends/onnx_digests.py) share this memo.
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

from .ir import Value


class _Digests:
    """sha256 digests of constant arrays, memoised per array object.

    Compile caches key on every constant's bytes (~100 MB for ResNet-50), so a digest is computed
    once per array and remembered while the array lives and stays read-only (constants are
    read-only and shared between graph copies; an array made writeable again is re-hashed).
    `prefetch` hashes in a background thread (hashlib releases the GIL on big buffers), so an
    importer can start the work while the graph is still being built; `digests` hashes from the
    other end of the list meanwhile, so the two threads meet in the middle.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[int, tuple[weakref.ref, bytes]] = {}
        self._running: dict[int, threading.Event] = {}
        self._queue: deque[np.ndarray] = deque()
        self._worker: threading.Thread | None = None
        self._prune_at = 1024

    def get(self, array: np.ndarray) -> bytes:
        key = id(array)
        while True:
            with self._lock:
                entry = self._done.get(key)
                if entry is not None and entry[0]() is array and not array.flags.writeable:
                    return entry[1]
                event = self._running.get(key)
                if event is None:
                    event = self._running[key] = threading.Event()
                    break
            event.wait()  # another thread is hashing this array: take its result
        digest = b""
        try:
            digest = _hash_array(array)
        finally:
            with self._lock:
                del self._running[key]
                if digest and not array.flags.writeable:
                    self._remember(key, array, digest)
            event.set()
        return digest

    def _remember(self, key: int, array: np.ndarray, digest: bytes) -> None:
        # no weakref callback (it would take the lock from inside any deallocation, and a
        # daemon thread frozen at exit may hold it); dead entries are pruned as the memo grows
        self._done[key] = (weakref.ref(array), digest)
        if len(self._done) > self._prune_at:
            self._done = {k: e for k, e in self._done.items() if e[0]() is not None}
            self._prune_at = max(1024, 2 * len(self._done))

    def seed(self, array: np.ndarray, digest: bytes) -> None:
        if not array.flags.writeable:
            with self._lock:
                self._remember(id(array), array, digest)

    def _known(self, array: np.ndarray) -> bool:
        entry = self._done.get(id(array))
        return entry is not None and entry[0]() is array

    def prefetch(self, arrays: Iterable[np.ndarray]) -> None:
        with self._lock:
            self._queue.extend(arrays)
            if self._worker is None and self._queue:
                self._worker = threading.Thread(target=self._drain, name="graphcnn-digests",
                                                daemon=True)
                self._worker.start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None
                    return
                array = self._queue.popleft()
            self.get(array)

    def digests(self, arrays: Sequence[np.ndarray]) -> list[bytes]:
        with self._lock:
            big = [a for a in arrays if a.nbytes >= 1 << 16 and not self._known(a)]
        if len(big) > 1:
            self.prefetch(big)
        out = [b""] * len(arrays)
        for i in reversed(range(len(arrays))):
            out[i] = self.get(arrays[i])
        return out


def _hash_array(array: np.ndarray) -> bytes:
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).view(np.uint8))
    return h.digest()


_DIGESTS = _Digests()


def constant_digests(values: Sequence[Value]) -> list[bytes]:
    """sha256 of each constant's dtype, shape and bytes (memoised per array; see _Digests). A
    constant not loaded yet whose source records its digest (`pending.digest`, e.g. a model
    file's, graphcnn/frontends/file_data.py) gives that, and stays unloaded."""
    pending = [getattr(v.pending, "digest", None) for v in values]
    if not any(pending):
        return _DIGESTS.digests([v.data for v in values])
    out = [b"" if p is None else p for p in pending]
    arrays = [i for i, p in enumerate(pending) if p is None]
    for i, digest in zip(arrays, _DIGESTS.digests([values[i].data for i in arrays])):
        out[i] = digest
    return out


def prefetch_constant_digests(values: Iterable[Value]) -> None:
    """Start hashing these constants in the background (an importer's hint that a compile, which
    keys its cache on them, is likely to follow)."""
    _DIGESTS.prefetch([v.data for v in values if v.pending is None and v.data is not None
                       and v.data.nbytes >= 1 << 16])


def seed_constant_digest(value: Value, digest: bytes) -> None:
    """Remember a digest computed earlier for these very bytes (e.g. recorded for an unchanged
    file), so it is not computed again; it must be what constant_digests would return."""
    _DIGESTS.seed(value.data, digest)


def seed_array_digest(array: np.ndarray, digest: bytes) -> None:
    """seed_constant_digest for a read-only array a constant will hold (a lazy source's)."""
    _DIGESTS.seed(array, digest)
