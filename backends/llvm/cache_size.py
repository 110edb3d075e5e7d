"""The compile cache's size: its limit, least-recently-used eviction, `info` and `clear`.

`GRAPHCNN_CACHE_MAX` bounds the bytes of all entries (default 4G; `500M`, `4G`, `1.5T` or
plain bytes; K/M/G/T are powers of 1024). After each store, while the total is above the
limit, whole entries are deleted, least recently used first, never the one just stored. A
load that hits touches its manifest's mtime (the bytes, which the manifest digest covers,
are not rewritten), so the manifest mtime is the entry's last use.

Order of deletion, for readers in other processes: the manifest goes first. cache.load reads
the manifest, then the object code, then the weights; a reader that finds no manifest misses,
and one that read it but then finds a file gone sees the manifest gone too and misses quietly
(cache.load checks), so an entry deleted under a reader makes it recompile, never fail. A file
it already opened stays readable after the unlink (POSIX).

Files of a key without a manifest are a store under way in some process (it writes the
manifest last) or the remains of one that died: they are counted, and evicted only once
nothing has written them for ORPHAN_SECONDS.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from graphcnn.budgets import parse_size

DEFAULT_MAX_BYTES = 4 << 30
ORPHAN_SECONDS = 3600.0  # a store writes its three files in seconds; older orphans are dead
SUFFIXES = (".json", ".o", ".weights")  # deletion order: manifest first (see above)
_FILE = re.compile(r"([0-9a-f]{64})(\.json|\.o|\.weights)(.*\.tmp)?")


def max_bytes() -> int:
    """The limit in force: GRAPHCNN_CACHE_MAX, or DEFAULT_MAX_BYTES when unset or empty."""
    text = os.environ.get("GRAPHCNN_CACHE_MAX", "")
    return parse_size(text, "GRAPHCNN_CACHE_MAX") if text.strip() else DEFAULT_MAX_BYTES


@dataclass
class Entry:
    key: str
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes
    last_used: float = 0.0  # the manifest's mtime, or the newest file's for an orphan
    complete: bool = False  # has a manifest

    @property
    def bytes(self) -> int:
        return sum(self.files.values())


def entries(d: Path) -> list[Entry]:
    """Every entry in `d` (files named <64 hex digits>.json/.o/.weights, and the temporary
    files of stores under way); other files are not the cache's and are left alone."""
    found: dict[str, Entry] = {}
    try:
        listing = list(os.scandir(d))
    except OSError:
        return []
    for item in listing:
        match = _FILE.fullmatch(item.name)
        if match is None:
            continue
        try:
            st = item.stat(follow_symlinks=False)
        except OSError:  # deleted meanwhile
            continue
        entry = found.setdefault(match[1], Entry(match[1]))
        entry.files[item.name] = st.st_size
        if match[2] == ".json" and not match[3]:
            entry.complete = True
            entry.last_used = st.st_mtime
        elif not entry.complete:
            entry.last_used = max(entry.last_used, st.st_mtime)
    return list(found.values())


def remove(d: Path, entry: Entry) -> int:
    """Delete an entry's files, manifest first; returns the bytes freed (a file another
    process deleted first is not counted)."""
    freed = 0
    order = {suffix: i for i, suffix in enumerate(SUFFIXES)}
    for name in sorted(entry.files, key=lambda n: (n.endswith(".tmp"),
                                                   order[_FILE.fullmatch(n)[2]])):
        try:
            os.unlink(d / name)
        except OSError:  # gone already (another process), or not ours to delete
            continue
        freed += entry.files[name]
    return freed


def evict(d: Path, limit: int, keep: str) -> list[Entry]:
    """Delete least recently used entries until the total is at most `limit`; never `keep`
    (the entry just stored) nor an orphan younger than ORPHAN_SECONDS. Returns those deleted."""
    found = entries(d)
    total = sum(e.bytes for e in found)
    if total <= limit:
        return []
    now = time.time()
    candidates = [e for e in found if e.key != keep
                  and (e.complete or now - e.last_used > ORPHAN_SECONDS)]
    removed = []
    for entry in sorted(candidates, key=lambda e: (e.last_used, e.key)):
        if total <= limit:
            break
        remove(d, entry)
        total -= entry.bytes
        removed.append(entry)
    return removed


def touch(manifest: Path) -> None:
    """Mark an entry used now (its manifest's mtime); an entry evicted meanwhile is no error."""
    nofollow = os.utime in os.supports_follow_symlinks  # never retime a symlink's target
    try:
        os.utime(manifest, follow_symlinks=not nofollow)
    except OSError:
        pass
