"""The process-wide native thread pool every JIT-loaded model shares (threads.py emits it).

Loaded once per process, on the first model's load, into an MCJIT engine that lives until
exit. Its object code is compiled once per CPU and pool source and kept beside the compile cache
(`pool-<key>.o`, the object behind its sha256, checked before it is loaded), since compiling it
takes several times a cached model's load. Its graphcnn_pool_* functions are registered as
process symbols, so each model's object code resolves its calls to them when it is loaded.
`ensure(threads)` grows the pool to the largest thread count asked so far and returns how many
threads run (a model asking for fewer uses only that many; see threads.py). The workers are
joined at interpreter exit. A forked child inherits the pool's code but not its workers: its
models run single-threaded.
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import stat
import tempfile
import threading
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from . import threads
from .cache import cache_dir
from .codegen import compile_object, cpu_and_features, init_llvm, target_machine

DIGEST_BYTES = 32  # sha256 of the object code, stored in front of it

_lock = threading.Lock()
_pool: _SharedPool | None = None


class _SharedPool:
    def __init__(self) -> None:
        init_llvm()
        # kept for the process' lifetime: the workers run its code until exit
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                  target_machine("host"))
        self._engine.add_object_file(llvm.ObjectFileRef.from_data(pool_object()))
        self._engine.finalize_object()
        address = {name: self._engine.get_function_address(name)
                   for name in threads.POOL_SYMBOLS}
        for name, addr in address.items():
            llvm.add_symbol(name, addr)
        self._start = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(address[threads.START])
        self._stop = ctypes.CFUNCTYPE(None)(address[threads.STOP])
        self._begin = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(address[threads.BEGIN])
        self._end = ctypes.CFUNCTYPE(None, ctypes.c_int64)(address[threads.END])
        atexit.register(self._stop)

    def ensure(self, count: int) -> int:
        """Grow the pool to `count` threads (the caller included) if it has fewer; returns the
        threads it runs (1 in a forked child of the process that started the workers)."""
        return int(self._start(count))

    def size(self) -> int:
        return int(self._start(1))

    def stop(self) -> None:
        """Join the workers (the next ensure starts them again)."""
        self._stop()


def shared_pool() -> _SharedPool:
    """The process' pool, compiled on first use."""
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = _SharedPool()
    return _pool


def _object_path() -> Path:
    name, features = cpu_and_features("host")
    h = hashlib.sha256()
    for part in (Path(threads.__file__).read_bytes(), llvmlite.__version__.encode(),
                 name.encode(), features.encode()):
        h.update(part)
        h.update(b"\0")
    return cache_dir() / f"pool-{h.hexdigest()[:32]}.o"


def _read_object(path: Path) -> bytes | None:
    """The stored object if `path` is a regular file whose digest matches, else None (opened
    without blocking, so a FIFO planted there cannot hang the load)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read()
    digest, obj = data[:DIGEST_BYTES], data[DIGEST_BYTES:]
    return obj if obj and hashlib.sha256(obj).digest() == digest else None


def pool_object() -> bytes:
    """The pool's object code for this CPU: stored, or compiled now (and stored, best effort)."""
    path = _object_path()
    obj = _read_object(path)
    if obj is None:
        obj = compile_object(threads.pool_module(), "host")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        except OSError:
            return obj
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(hashlib.sha256(obj).digest() + obj)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
    return obj
