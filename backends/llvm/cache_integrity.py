"""Checks on a compile-cache entry before its code is loaded or its weights used.

An entry's manifest carries xxh3-128 digests of its object code, its weights arena and its own
other fields (xxh3 hashes ResNet-50's 100 MB of weights in a few milliseconds). Every field
is checked for type and range, symbol names must be C identifiers, sizes must match the files,
and files are opened without following symlinks or blocking (a FIFO in place of a file is
refused, not waited on). The weights are read into private, aligned memory: a shared mapping
would fault (SIGBUS) in every live model if another process truncated the file.

The digests detect corruption and stale or torn entries; they are no defence against a writer
who recomputes them, which is why the cache directory must be owned by the user and not
world-writable (cache.py checks it).
"""
from __future__ import annotations

import json
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
import xxhash

from graphcnn.errors import CacheIntegrityWarning

from .weights_fills import FillError, aligned_readonly
from .weights_fills import check as check_fills

MAX_MANIFEST_BYTES = 16 << 20   # a manifest lists kernels; ResNet-50's is ~20 KB
MAX_OBJECT_BYTES = 4 << 30      # the object code of one entry
MAX_WEIGHTS_BYTES = 1 << 40     # the packed weights of one entry
MAX_WORKSPACE_BYTES = 1 << 40   # no plan asks for a terabyte; a bigger field is corrupt
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_DIGEST = re.compile(r"[0-9a-f]{32}")
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


class BadEntry(Exception):
    """A cache entry that must not be used; the message says why."""


def digest(data) -> str:
    """xxh3-128 of a bytes-like object, as hex."""
    return xxhash.xxh3_128_hexdigest(data)


def manifest_digest(manifest: dict) -> str:
    """The digest of every manifest field but `manifest_digest` itself, in canonical JSON."""
    rest = {k: v for k, v in manifest.items() if k != "manifest_digest"}
    return digest(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())


def seal(manifest: dict, obj: bytes, weights) -> dict:
    """`manifest` with its digests added, as it will read back from JSON."""
    sealed = json.loads(json.dumps({**manifest, "object_digest": digest(obj),
                                    "weights_digest": digest(weights)}))
    sealed["manifest_digest"] = manifest_digest(sealed)
    return sealed


def _int(manifest: dict, field: str, low: int, high: int) -> int:
    value = manifest.get(field)
    if type(value) is not int or not low <= value <= high:
        raise BadEntry(f"manifest field {field!r} is {value!r}, not an int in [{low}, {high}]")
    return value


def check_manifest(manifest: object, key: str) -> None:
    """Types and ranges of every field the loader and the model use; raises BadEntry."""
    if not isinstance(manifest, dict):
        raise BadEntry("manifest is not a JSON object")
    if manifest.get("key") != key:
        raise BadEntry("manifest belongs to another key")
    symbol = manifest.get("weights_symbol")
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise BadEntry(f"weights_symbol {symbol!r} is not a C identifier")
    _int(manifest, "workspace_bytes", 0, MAX_WORKSPACE_BYTES)
    _int(manifest, "weights_file_bytes", 0, MAX_WEIGHTS_BYTES)
    _int(manifest, "weights_bytes", 0, arena_bytes(manifest))
    total = _int(manifest, "object_bytes", 1, MAX_OBJECT_BYTES)
    sizes = manifest.get("object_sizes")
    if (not isinstance(sizes, list) or not sizes
            or any(type(n) is not int or n <= 0 for n in sizes) or sum(sizes) != total):
        raise BadEntry(f"object_sizes {sizes!r} do not split object_bytes {total}")
    for field in ("object_digest", "weights_digest", "manifest_digest"):
        value = manifest.get(field)
        if not isinstance(value, str) or not _DIGEST.fullmatch(value):
            raise BadEntry(f"manifest field {field!r} is missing or malformed")
    kernels = manifest.get("kernels")
    if not isinstance(kernels, list) or not all(isinstance(k, dict) for k in kernels):
        raise BadEntry("manifest field 'kernels' is not a list of objects")
    if not isinstance(manifest.get("cpu"), str) or not isinstance(manifest.get("io"), list):
        raise BadEntry("manifest fields 'cpu' or 'io' malformed")


def arena_bytes(manifest: dict) -> int:
    """The weights arena's size: the stored bytes plus the uniform fills left out of them
    (weights_fills.py; none in an entry without the field); raises BadEntry."""
    try:
        return check_fills(manifest.get("weights_fills", []), manifest["weights_file_bytes"],
                           MAX_WEIGHTS_BYTES)
    except FillError as e:
        raise BadEntry(str(e)) from None


def _open_regular(path: Path, size: int | None, limit: int) -> tuple[int, int]:
    """An fd open on `path` and its size: a regular file (not a symlink, FIFO or device; the
    open never blocks) of exactly `size` bytes, or at most `limit` if size is None."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadEntry(f"{path.name} is not a regular file")
        if (size is not None and st.st_size != size) or st.st_size > limit:
            raise BadEntry(f"{path.name} has {st.st_size} bytes, expected "
                           f"{size if size is not None else f'at most {limit}'}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _read_into(fd: int, view: memoryview, name: str) -> None:
    with os.fdopen(fd, "rb", buffering=0, closefd=True) as f:
        done = 0
        while done < len(view):
            n = f.readinto(view[done:])
            if not n:
                raise BadEntry(f"{name} ended early (truncated while read)")
            done += n


def read_regular(path: Path, size: int | None = None, limit: int = MAX_MANIFEST_BYTES
                 ) -> bytes:
    """The bytes of a regular file (see _open_regular)."""
    fd, n = _open_regular(path, size, limit)
    buf = bytearray(n)
    _read_into(fd, memoryview(buf), path.name)
    return bytes(buf)


def read_weights(path: Path, size: int) -> np.ndarray:
    """The weights file, exactly `size` bytes, read into a private 64-byte aligned read-only
    array (what the model binds its weights symbol to, without another copy). Huge pages, like
    the workspace: long-lived memory read on every call, and 512x fewer page faults to fill."""
    fd, n = _open_regular(path, size, MAX_WEIGHTS_BYTES)
    arena = aligned_readonly(n)
    _read_into(fd, memoryview(arena), path.name)
    arena.flags.writeable = False
    return arena


def dir_is_safe(d: Path) -> bool:
    """A cache directory another user could write to is not used (warns): owned by someone
    else, world-writable, or in a world-writable parent without the sticky bit. A missing
    directory is safe (the store creates it, mode 0700)."""
    try:
        st = os.stat(d)
        parent = os.stat(d.parent)
    except FileNotFoundError:
        return True
    except OSError as e:
        problem = f"cannot be inspected ({e})"
    else:
        problem = ""
        if not stat.S_ISDIR(st.st_mode):
            problem = "is not a directory"
        elif st.st_mode & stat.S_IWOTH:
            problem = "is world-writable"
        elif hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            problem = "is owned by another user"
        elif parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
            problem = "is in a world-writable directory without the sticky bit"
    if problem:
        warnings.warn(f"graphcnn compile cache {d} {problem}: not using it (fix its "
                      "permissions, set GRAPHCNN_CACHE_DIR, or GRAPHCNN_CACHE=off)",
                      CacheIntegrityWarning, stacklevel=4)
        return False
    return True
