"""Constants read from a model file on first use: the file-reading LazyData of a graph restored
from an import snapshot (onnx_snapshot.py), and the identity that says the file is unchanged.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from ..digests import seed_array_digest
from ..errors import ModelLoadError


def file_identity(st: os.stat_result) -> list[int]:
    """What says a file is unchanged: device, inode, size, mtime and ctime in ns (see
    graphcnn/frontends/onnx_digests.py for why that is enough)."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class Deferred:
    """A constant's bytes still in the model file they were imported from: little-endian
    `dtype` data at [offset, offset + nbytes) of `path`, while the file keeps `identity`.

    A graphcnn.ir.LazyData: loaded once, on first use (shared by every copy of the graph), into
    an array of its own, read-only, its digest (recorded with the file, see
    graphcnn.digests.constant_digests) remembered. A file that changed since the import is a
    ModelLoadError: its bytes may no longer be the graph's.
    """

    __slots__ = ("_array", "_lock", "digest", "dtype", "identity", "nbytes", "offset", "path",
                 "shape", "what")

    def __init__(self, path: str, identity: Sequence[int], offset: int, nbytes: int,
                 dtype: np.dtype, shape: tuple[int, ...], digest: bytes, what: str):
        self.path, self.identity = path, list(identity)
        self.offset, self.nbytes = offset, nbytes
        self.dtype, self.shape = np.dtype(dtype), tuple(shape)
        self.digest, self.what = digest, what
        self._lock = threading.Lock()
        self._array: np.ndarray | None = None

    @property
    def loaded(self) -> bool:
        return self._array is not None

    def load(self) -> np.ndarray:
        with self._lock:
            if self._array is None:
                array = self._read()
                array.setflags(write=False)
                seed_array_digest(array, self.digest)
                self._array = array
            return self._array

    def _changed(self) -> ModelLoadError:
        return ModelLoadError(f"model file {self.path!r} changed since it was imported, so "
                              f"constant {self.what} (read on first use) may no longer be the "
                              f"graph's: import the model again")

    def _read(self) -> np.ndarray:
        buf = np.empty(self.nbytes, np.uint8)
        try:
            with open(self.path, "rb", buffering=0) as f:
                if file_identity(os.fstat(f.fileno())) != self.identity:
                    raise self._changed()
                f.seek(self.offset)
                view, got = memoryview(buf), 0
                while got < self.nbytes:
                    n = f.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got != self.nbytes or file_identity(os.fstat(f.fileno())) != self.identity:
                    raise self._changed()  # shrank, or written while being read
        except OSError as e:
            raise ModelLoadError(f"cannot read constant {self.what} from model file "
                                 f"{self.path!r}: {e.strerror or e}") from None
        little = buf.view(self.dtype.newbyteorder("<"))
        if little.dtype != self.dtype or self.dtype.kind == "b":  # as the importer decodes
            little = little.astype(self.dtype)
        return little.reshape(self.shape)

    def __deepcopy__(self, memo: dict) -> Deferred:
        return self  # read-only once loaded: shared like constant arrays

    def __reduce__(self):
        return (Deferred, (self.path, self.identity, self.offset, self.nbytes, self.dtype,
                           self.shape, self.digest, self.what))

    def __repr__(self) -> str:
        return (f"Deferred({self.what}: {self.dtype.name}{list(self.shape)} at "
                f"{self.path!r}[{self.offset}:{self.offset + self.nbytes}])")
