"""The compile cache under corruption: changed object or weights bytes, hostile manifest fields,
a FIFO for a manifest, weights truncated under a live model, an unsafe directory, the cache
switched off. Each ends in a correct result (against the reference interpreter, on random
input) and, where an entry was bad, a CacheIntegrityWarning; never in a crash or a hang. The
cases that crashed or hung the process run in a child process, so a crash fails the test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from graphcnn.backends.reference import interpret

import graphcnn as gc
from graphcnn.errors import CacheIntegrityWarning
from graphcnn.ir import Graph

HERE = Path(__file__).parent
CHILD_TIMEOUT_S = 300  # a child that hangs (a blocking open) fails instead of stalling pytest


def tiny_graph() -> Graph:
    """Conv, relu, pool, dense: object code and a weights arena of a few KB."""
    gc.manual_seed(7)
    b = gc.GraphBuilder("integrity")
    x = b.input("input", (1, 3, 9, 9))
    y = gc.ReLU()(gc.Conv2d(3, 8, 3, padding=1)(x))
    y = gc.Flatten()(gc.GlobalAvgPool2d()(gc.Conv2d(8, 8, 3)(y)))
    return b.build(gc.Dense(8, 5)(y))


def random_input(seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, 9, 9)).astype(np.float32)


def fill(d: Path, monkeypatch) -> tuple[Path, dict]:
    """Compile once into the cache dir `d` (from now on the test's); the entry's path stem and
    manifest."""
    from graphcnn.backends.llvm import cache

    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(d))
    gc.compile(tiny_graph(), target="llvm")
    cache.flush()
    (manifest,) = (d / "llvm").glob("*.json")
    return manifest.with_suffix(""), json.loads(manifest.read_text())


CHILD = textwrap.dedent("""
    import json, os, sys, warnings
    sys.path.insert(0, {here!r})
    import numpy as np
    import graphcnn as gc
    from graphcnn.backends.reference import interpret
    from graphcnn.errors import CacheIntegrityWarning
    from test_cache_integrity import random_input, tiny_graph

    def compiled():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            cm = gc.compile(graph, target="llvm")
        return cm, any(issubclass(w.category, CacheIntegrityWarning) for w in seen)

    graph, x = tiny_graph(), random_input()
    want = interpret(graph, [x])[0]
    cm, warned = compiled()
    result = {{"warned": warned, "from_cache": cm.from_cache,
               "diff": float(np.abs(cm(x) - want).max())}}
    if {truncate!r}:  # the model holds the weights; another process truncates the file
        os.truncate({truncate!r}, 0)
        result["diff_after_truncation"] = float(np.abs(cm(x) - want).max())
        again, result["warned_again"] = compiled()
        result["diff_again"] = float(np.abs(again(x) - want).max())
    print(json.dumps(result))
""")


def run_child(d: Path, truncate: str = "") -> dict:
    env = {**os.environ, "GRAPHCNN_CACHE_DIR": str(d)}
    proc = subprocess.run([sys.executable, "-c", CHILD.format(here=str(HERE), truncate=truncate)],
                          env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                          check=False)
    assert proc.returncode == 0, f"child died ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_repaired(stem: Path) -> None:
    """The bad entry was replaced by a good one: the next load uses it, without a warning."""
    from graphcnn.backends.llvm import cache

    cache.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheIntegrityWarning)
        assert cache.load(stem.name) is not None


def flip_object_bytes(stem: Path, manifest: dict) -> None:
    path = stem.with_suffix(".o")
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 256] = bytes(b ^ 0xFF for b in data[mid:mid + 256])
    path.write_bytes(bytes(data))


def change_weights(stem: Path, manifest: dict) -> None:
    path = stem.with_suffix(".weights")
    data = path.read_bytes()
    w = np.frombuffer(data, np.float32, count=len(data) // 4).copy()
    w[: len(w) // 2] += 0.5
    path.write_bytes(w.tobytes() + data[w.nbytes:])


def edit_manifest(**fields):
    def edit(stem: Path, manifest: dict) -> None:
        stem.with_suffix(".json").write_text(json.dumps({**manifest, **fields}))
    return edit


def split_object_sizes(stem: Path, manifest: dict) -> None:
    n = manifest["object_bytes"]
    edit_manifest(object_sizes=[n - 1000, 1000])(stem, manifest)


def fifo_manifest(stem: Path, manifest: dict) -> None:
    path = stem.with_suffix(".json")
    path.unlink()
    os.mkfifo(path)


CORRUPTIONS = {
    "object-bytes-flipped": flip_object_bytes,
    "weights-changed": change_weights,
    "workspace-0": edit_manifest(workspace_bytes=0),
    "workspace-negative": edit_manifest(workspace_bytes=-5),
    "workspace-string": edit_manifest(workspace_bytes="abc"),
    "workspace-huge": edit_manifest(workspace_bytes=2 ** 60),
    "weights-bytes-huge": edit_manifest(weights_bytes=2 ** 60),
    "symbol-not-identifier": edit_manifest(weights_symbol="bad symbol;"),
    "symbol-other": edit_manifest(weights_symbol="graphcnn_weights_0000000000000000"),
    "object-sizes-split": split_object_sizes,
    "object-sizes-string": edit_manifest(object_sizes="abc"),
    "manifest-not-json": lambda stem, m: stem.with_suffix(".json").write_text("{"),
    "manifest-fifo": fifo_manifest,
}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_entry_is_deleted_recompiled_and_correct(tmp_path, monkeypatch, corrupt):
    stem, manifest = fill(tmp_path, monkeypatch)
    corrupt(stem, manifest)
    got = run_child(tmp_path)
    assert got["warned"] and not got["from_cache"]
    assert got["diff"] < 1e-4
    assert_repaired(stem)


def test_truncated_weights_under_a_live_model(tmp_path, monkeypatch):
    stem, _ = fill(tmp_path, monkeypatch)
    got = run_child(tmp_path, truncate=str(stem.with_suffix(".weights")))
    assert got["from_cache"] and not got["warned"]
    assert got["diff"] < 1e-4 and got["diff_after_truncation"] < 1e-4
    assert got["warned_again"] and got["diff_again"] < 1e-4  # the truncated entry is refused
    assert_repaired(stem)


def test_good_entry_hits_without_warning(tmp_path, monkeypatch):
    _, manifest = fill(tmp_path, monkeypatch)
    assert {"object_digest", "weights_digest", "manifest_digest"} <= manifest.keys()
    x = random_input()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheIntegrityWarning)
        cm = gc.compile(tiny_graph(), target="llvm")
    assert cm.from_cache
    np.testing.assert_allclose(cm(x), interpret(tiny_graph(), [x])[0], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_world_writable_cache_dir_is_not_used(tmp_path, monkeypatch):
    stem, _ = fill(tmp_path, monkeypatch)
    os.chmod(stem.parent, 0o777)
    x = random_input()
    with pytest.warns(CacheIntegrityWarning, match="world-writable"):
        cm = gc.compile(tiny_graph(), target="llvm")
    assert not cm.from_cache
    np.testing.assert_allclose(cm(x), interpret(tiny_graph(), [x])[0], rtol=1e-4, atol=1e-5)


def test_cache_off_switch(tmp_path, monkeypatch):
    fill(tmp_path / "full", monkeypatch)
    empty = tmp_path / "empty"
    x = random_input()
    monkeypatch.setenv("GRAPHCNN_CACHE", "off")
    for d in (tmp_path / "full", empty):
        monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(d))
        cm = gc.compile(tiny_graph(), target="llvm")
        assert not cm.from_cache
        np.testing.assert_allclose(cm(x), interpret(tiny_graph(), [x])[0], rtol=1e-4,
                                   atol=1e-5)
    from graphcnn.backends.llvm import cache

    cache.flush()
    assert not empty.exists()  # nothing was written
