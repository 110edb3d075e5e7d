"""The compile cache's size limit (cache_size.py): GRAPHCNN_CACHE_MAX parsing, least recently
used eviction over three small models, the entry just stored kept, an entry deleted under a
reader in another process, and `graphcnn cache info/clear` as real subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from graphcnn.backends.llvm import cache
from graphcnn.backends.llvm.cache_size import entries, evict
from graphcnn.backends.reference import interpret

import graphcnn as gc
from graphcnn.budgets import parse_size
from graphcnn.errors import InvalidOptionError
from graphcnn.ir import Graph

CHILD_TIMEOUT_S = 600


def small_graph(seed: int) -> Graph:
    gc.manual_seed(seed)
    b = gc.GraphBuilder(f"small{seed}")
    x = b.input("input", (1, 3, 8, 8))
    y = gc.Flatten()(gc.GlobalAvgPool2d()(gc.ReLU()(gc.Conv2d(3, 4 + seed, 3)(x))))
    return b.build(gc.Dense(4 + seed, 3)(y))


def x_input() -> np.ndarray:
    return np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)


def check(graph: Graph, cm) -> None:
    ref = interpret(graph, [x_input()])[0]
    got = np.asarray(cm(x_input()))
    assert np.linalg.norm(got - ref) <= 1e-5 * np.linalg.norm(ref)


def stored(graph: Graph):
    cm = gc.compile(graph, target="llvm")
    cache.flush()
    return cm


def keys(d: Path) -> set[str]:
    return {e.key for e in entries(d) if e.complete}


@pytest.mark.parametrize("text, size", [("123", 123), ("4G", 4 << 30), ("500M", 500 << 20),
                                        ("1.5g", 3 << 29), ("64KiB", 64 << 10), (" 2T ", 2 << 40),
                                        ("10mb", 10 << 20)])
def test_parse_size(text, size):
    assert parse_size(text, "GRAPHCNN_CACHE_MAX") == size


@pytest.mark.parametrize("text", ["0", "0M", "-1", "abc", "4X", "G", "1e9", "0.0001"])
def test_bad_size_names_the_variable(text):
    with pytest.raises(InvalidOptionError, match="GRAPHCNN_CACHE_MAX"):
        parse_size(text, "GRAPHCNN_CACHE_MAX")


def test_bad_limit_fails_the_compile(monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_MAX", "lots")
    with pytest.raises(InvalidOptionError, match="GRAPHCNN_CACHE_MAX='lots'"):
        gc.compile(small_graph(0), target="llvm")


def test_lru_eviction_over_three_models(tmp_path, monkeypatch):
    graphs = [small_graph(s) for s in range(3)]
    # each entry's size, learnt in a cache of its own (keys do not depend on the directory)
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path / "sizes"))
    for g in graphs:
        stored(g)
    sizes = {e.key: e.bytes for e in entries(tmp_path / "sizes" / "llvm")}
    assert len(sizes) == 3

    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path / "c"))
    d = tmp_path / "c" / "llvm"
    stored(graphs[0])
    (key_a,) = keys(d)
    stored(graphs[1])
    (key_b,) = keys(d) - {key_a}
    now = time.time()  # A older than B, then a hit on A makes it the most recently used
    os.utime(d / f"{key_a}.json", (now - 1000, now - 1000))
    os.utime(d / f"{key_b}.json", (now - 500, now - 500))
    check(graphs[0], stored(graphs[0]))
    assert os.stat(d / f"{key_a}.json").st_mtime > now - 100
    key_c = (set(sizes) - {key_a, key_b}).pop()
    monkeypatch.setenv("GRAPHCNN_CACHE_MAX", str(sizes[key_a] + sizes[key_c]))
    check(graphs[2], stored(graphs[2]))
    assert keys(d) == {key_a, key_c}  # B, least recently used, went whole
    assert not list(d.glob(f"{key_b}*"))
    check(graphs[1], stored(graphs[1]))  # and recompiles; A, now the oldest, goes first
    fits = sizes[key_b] + sizes[key_c] <= sizes[key_a] + sizes[key_c]
    assert keys(d) == ({key_b, key_c} if fits else {key_b})


def test_entry_just_stored_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHCNN_CACHE_MAX", "1")
    d = tmp_path / "llvm"
    stored(small_graph(0))
    (first,) = keys(d)
    stored(small_graph(1))
    (second,) = keys(d)
    assert second != first
    assert len(list(d.glob(f"{second}*"))) == 3
    check(small_graph(1), stored(small_graph(1)))  # a hit still


def test_eviction_leaves_other_files_and_young_orphans(tmp_path):
    d = tmp_path
    for name in ("notes.txt", "pool-0123.o", f"{'a' * 64}.o", f"{'b' * 64}.weights"):
        (d / name).write_bytes(b"x" * 100)
    old = time.time() - 7200
    os.utime(d / f"{'b' * 64}.weights", (old, old))  # a store that died long ago
    removed = evict(d, 1, keep="")
    assert [e.key for e in removed] == ["b" * 64]
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["notes.txt", "pool-0123.o", f"{'a' * 64}.o"])


READER = textwrap.dedent("""
    import sys, warnings
    sys.path.insert(0, {here!r})
    import numpy as np
    import graphcnn as gc
    from test_cache_size import check, small_graph
    warnings.simplefilter("error")  # an eviction under a reader is a quiet miss, no warning
    from graphcnn.backends.llvm import cache
    for _ in range({rounds}):
        for seed in range(3):
            for _ in range(3):  # a store, then hits unless the evictor came first
                check(small_graph(seed), gc.compile(small_graph(seed), target="llvm"))
            cache.flush()
    print("ok")
""")
EVICTOR = textwrap.dedent("""
    import random, sys, time
    from pathlib import Path
    from graphcnn.backends.llvm.cache_size import evict
    d = Path(sys.argv[1])
    deadline = time.time() + 600
    rng = random.Random(0)
    while not Path(sys.argv[2]).exists() and time.time() < deadline:
        time.sleep(rng.random() * 0.004)  # jitter: some loads hit, some lose their entry
        evict(d, 1, keep="")  # every complete entry
    print("ok")
""")


def test_eviction_between_manifest_and_object_is_a_quiet_miss(tmp_path, monkeypatch):
    """The race itself, made certain: another process evicts the entry (manifest first)
    right after this one read the manifest."""
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    d = tmp_path / "llvm"
    stored(small_graph(0))
    real = cache.read_regular

    def read_then_evicted(path, *args):
        data = real(path, *args)
        if path.suffix == ".json":
            assert [e.key for e in evict(d, 1, keep="")] == [path.stem]
        return data

    monkeypatch.setattr(cache, "read_regular", read_then_evicted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = gc.compile(small_graph(0), target="llvm")
    assert not cm.from_cache
    check(small_graph(0), cm)


def test_entries_evicted_under_a_reader(tmp_path):
    """One process compiles three models round after round from the cache while another
    evicts every complete entry in a loop: every result is right and nothing warns."""
    env = {**os.environ, "GRAPHCNN_CACHE_DIR": str(tmp_path), "GRAPHCNN_CACHE_MAX": "4G"}
    stop = tmp_path / "stop"
    (tmp_path / "llvm").mkdir(mode=0o700)
    evictor = subprocess.Popen([sys.executable, "-c", EVICTOR, str(tmp_path / "llvm"),
                                str(stop)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        reader = subprocess.run(
            [sys.executable, "-c", READER.format(here=str(Path(__file__).parent), rounds=8)],
            env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    finally:
        stop.touch()
        out, _ = evictor.communicate(timeout=CHILD_TIMEOUT_S)
    assert reader.returncode == 0, reader.stderr[-3000:]
    assert reader.stdout.strip() == "ok"
    assert evictor.returncode == 0 and out.strip() == "ok"


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphcnn", "cache", *args], env=env,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)


def test_cli_cache_info_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    for seed in range(2):
        stored(small_graph(seed))
    d = tmp_path / "llvm"
    (d / "mine.txt").write_text("not the cache's")
    total = sum(e.bytes for e in entries(d))
    env = {**os.environ, "GRAPHCNN_CACHE_DIR": str(tmp_path), "GRAPHCNN_CACHE_MAX": "500M"}

    info = json.loads(cli("info", "--json", env=env).stdout)
    assert info["dir"] == str(d) and info["entries"] == 2 and info["total_bytes"] == total
    assert info["max_bytes"] == 500 << 20
    assert [e["bytes"] for e in info["largest"]] == sorted(
        (e.bytes for e in entries(d)), reverse=True)
    text = cli("info", env=env).stdout
    assert str(d) in text and "entries: 2" in text and str(total) in text

    done = cli("clear", env=env)
    assert done.returncode == 0 and f"({total} bytes, 2 entries)" in done.stdout
    assert (d / "mine.txt").exists() and not keys(d)
    assert json.loads(cli("info", "--json", env=env).stdout)["entries"] == 0

    bad = cli("info", env={**env, "GRAPHCNN_CACHE_MAX": "0"})
    assert bad.returncode == 1 and "GRAPHCNN_CACHE_MAX" in bad.stderr


@pytest.mark.parametrize("suffix", [".o", ".weights"])
def test_file_deleted_under_a_manifest_is_a_quiet_miss(tmp_path, monkeypatch, suffix):
    """What a reader sees when an eviction or a hand deletes a file after it read the
    manifest: a recompile, no warning, and the entry stored afresh."""
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    d = tmp_path / "llvm"
    stored(small_graph(0))
    (key,) = keys(d)
    (d / f"{key}{suffix}").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = stored(small_graph(0))
    assert not cm.from_cache
    check(small_graph(0), cm)
    assert len(list(d.glob(f"{key}*"))) == 3
