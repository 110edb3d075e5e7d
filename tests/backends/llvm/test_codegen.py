"""Kernel sharing and the split compile: layers with the same plan share one kernel function,
kernels/ plans live in their own modules, compiled (in forked children) and linked back."""
from __future__ import annotations

import gc as collector
import importlib
import os

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from llvm_cases import rel_l2, rnd
from llvmlite import ir

import graphcnn as gc
from graphcnn.errors import CompileError
from graphcnn.ir import Graph

lower_mod = importlib.import_module("graphcnn.backends.llvm.lower")
codegen = importlib.import_module("graphcnn.backends.llvm.codegen")


def for_llvm(graph: Graph) -> Graph:
    """A copy through the llvm pass pipeline (16 lanes), which lowering expects."""
    return gc.optimize(graph, target="llvm", block=16)


def twin_convs() -> gc.Graph:
    gc.manual_seed(3)
    return gc.Sequential(gc.Conv2d(16, 16, 3, padding=1), gc.ReLU(),
                         gc.Conv2d(16, 16, 3, padding=1), gc.ReLU(),
                         gc.Conv2d(16, 32, 1)).build((1, 16, 12, 12))


def test_same_shape_layers_share_one_kernel():
    graph = gc.optimize(twin_convs())
    lowered = lower_mod.lower(for_llvm(graph), 16, "graphcnn_weights_t")
    kernels = [f for m, _ in lowered.kernel_modules for f in m.functions
               if not f.is_declaration and f.linkage != "internal"]
    assert len(kernels) == 2  # the two 16->16 3x3 convs share one, the 1x1 has its own
    assert len(lowered.modules) >= 2


def test_split_modules_link_and_match_reference():
    graph = twin_convs()
    x = rnd(1, 16, 12, 12)
    want = interpret(graph, [x])[0]
    for threads in (1, 2):
        got = gc.compile(graph, target="llvm", cache=False, threads=threads)(x)
        assert rel_l2(got, want) < 1e-5


def test_compile_objects_without_fork_matches(monkeypatch):
    graph = gc.optimize(twin_convs())
    lowered = lower_mod.lower(for_llvm(graph), 16, "graphcnn_weights_t")
    forked = codegen.compile_objects(lowered.modules, "host")
    monkeypatch.setattr(codegen, "_fork_compile", lambda *a: None)
    lowered = lower_mod.lower(for_llvm(graph), 16, "graphcnn_weights_t")
    serial = codegen.compile_objects(lowered.modules, "host")
    assert len(forked) == len(serial) == len(lowered.modules)
    assert all(isinstance(o, bytes) and o for o in forked)


def winograd_then_direct() -> gc.Graph:
    gc.manual_seed(4)  # the 3x3 conv is a Winograd plan (kernel family rule 3), the 1x1 not
    return gc.Sequential(gc.Conv2d(32, 32, 3, padding=1), gc.ReLU(),
                         gc.Conv2d(32, 32, 1)).build((1, 32, 16, 16))


def test_each_module_compiles_with_its_pipeline(monkeypatch):
    """The main module (the emit/ kernels LLVM vectorises) at O2, the hand-vectorised kernels/
    plans "lean", the Winograd plans (their class's `pipeline`, O1) in a module of their own;
    forked or not, the same pipelines."""
    pipelines: dict[str, str] = {}
    compile_object = codegen.compile_object

    def spy(module, cpu, aot=False, pipeline=codegen.MODEL_PIPELINE):
        pipelines[module.name] = pipeline
        return compile_object(module, cpu, aot, pipeline)
    monkeypatch.setattr(codegen, "_fork_compile", lambda *a: None)  # all here: spied on
    monkeypatch.setattr(codegen, "compile_object", spy)
    graph = gc.optimize(winograd_then_direct())
    lowered = lower_mod.lower(for_llvm(graph), 16, "graphcnn_weights_t")
    codegen.compile_objects(lowered.modules, "host")
    assert pipelines.pop(lowered.module.name) == codegen.MODEL_PIPELINE == "O2"
    kernels = {pipeline: [f.name for f in m.functions
                          if not f.is_declaration and f.linkage != "internal"]
               for m, pipeline in lowered.kernel_modules}
    assert kernels == {"O1": ["k.conv"], "lean": ["k.conv_1"]}
    assert sorted(pipelines.values()) == ["O1", "lean"]


def test_winograd_and_direct_modules_link_and_match_reference():
    graph = winograd_then_direct()
    x = rnd(1, 32, 16, 16)
    got = gc.compile(graph, target="llvm", cache=False)(x)
    assert rel_l2(got, interpret(graph, [x])[0]) < 1e-5


def test_unknown_pipeline_is_refused():
    module = ir.Module(name="m")
    with pytest.raises(ValueError, match="unknown pipeline 'O9'"):
        codegen.compile_object(module, "host", pipeline="O9")


def test_cache_round_trip_with_several_objects(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    graph = twin_convs()
    x = rnd(1, 16, 12, 12)
    first = gc.compile(graph, target="llvm", cache=True)
    second = gc.compile(graph, target="llvm", cache=True)
    assert second.from_cache and not first.from_cache
    np.testing.assert_array_equal(first(x), second(x))


@pytest.mark.parametrize("n, c, oc, groups, hw, residual, act", [
    (1, 60, 60, 3, (7, 7), False, "relu"),      # ShuffleNet's grouped 1x1, scalar tail
    (2, 12, 18, 3, (9, 11), True, "none"),      # residual, ocg=6 -> tiles of 2 channels
    (1, 8, 5, 1, (20, 20), False, "sigmoid"),   # odd out channels -> tiles of 1
    (1, 16, 32, 2, (16, 17), True, "relu"),     # several full 64-pixel blocks + tails
])
def test_pointwise_conv_matches_reference(n, c, oc, groups, hw, residual, act):
    g = Graph("pw")
    x = g.add_input("x", (n, c, *hw))
    ins = [x, g.add_constant(rnd(oc, c // groups, 1, 1), "w"), g.add_constant(rnd(oc), "b")]
    if residual:
        ins.append(g.add_input("r", (n, oc, *hw)))
    g.set_outputs([g.apply("conv", ins, {"groups": groups, "residual": residual,
                                          "activation": act})])
    feeds = [rnd(*v.type.shape) for v in g.inputs]
    want = interpret(g, feeds)[0]
    for threads in (1, 2):
        cm = gc.compile(g, target="llvm", cache=False, threads=threads, rewrites=False,
                        opt_level=0)
        assert any(k["op"] == "conv" for k in cm.kernels)
        assert rel_l2(cm(*feeds), want) < 1e-5


def test_silent_child_is_killed_and_module_compiled_here(monkeypatch):
    monkeypatch.setattr(codegen, "CHILD_TIMEOUT_S", 0.0)  # every child counts as hung
    graph = twin_convs()
    x = rnd(1, 16, 12, 12)
    got = gc.compile(graph, target="llvm", cache=False)(x)
    assert rel_l2(got, interpret(graph, [x])[0]) < 1e-5


base = importlib.import_module("graphcnn.backends.llvm.emit.base")


def test_kernel_modules_handed_over_complete_and_in_order(monkeypatch):
    monkeypatch.setattr(base, "KERNEL_CHUNK_INSTRUCTIONS", 1)  # one module per kernel
    graph = gc.optimize(twin_convs())
    handed: list[tuple[object, str]] = []
    lowered = lower_mod.lower(for_llvm(graph), 16, "graphcnn_weights_t",
                              on_kernel_module=lambda m, p: handed.append((m, str(m))))
    assert [m for m, _ in handed] == [m for m, _ in lowered.kernel_modules]
    assert lowered.kernel_modules == lowered.modules[1:]
    assert len(handed) == 2
    for module, text in handed:  # nothing was added to a module once it was handed over
        assert str(module) == text


def test_overlapped_compile_matches_serial_and_no_fork(monkeypatch):
    monkeypatch.setattr(base, "KERNEL_CHUNK_INSTRUCTIONS", 1)  # submit during lowering
    graph = twin_convs()
    x = rnd(1, 16, 12, 12)
    want = interpret(graph, [x])[0]
    overlapped = gc.compile(graph, target="llvm", cache=False)(x)
    monkeypatch.setattr(codegen, "_fork_compile", lambda *a: None)  # fork failed: all here
    serial = gc.compile(graph, target="llvm", cache=False)(x)
    np.testing.assert_array_equal(overlapped, serial)
    monkeypatch.delattr(os, "fork")  # a platform without fork
    np.testing.assert_array_equal(gc.compile(graph, target="llvm", cache=False)(x), serial)
    assert rel_l2(overlapped, want) < 1e-5


def test_failed_lowering_reaps_submitted_children(monkeypatch):
    monkeypatch.setattr(base, "KERNEL_CHUNK_INSTRUCTIONS", 1)
    pids: list[int] = []
    fork = codegen._fork_compile

    def recording_fork(*args):
        child = fork(*args)
        if child is not None:
            pids.append(child[0])
        return child
    monkeypatch.setattr(codegen, "_fork_compile", recording_fork)
    emitters = importlib.import_module("graphcnn.backends.llvm.emit").EMITTERS

    def broken(ctx, node):
        raise RuntimeError("emitter bug")
    monkeypatch.setitem(emitters, "from_blocked", broken)  # after the convs' kernels
    with pytest.raises(CompileError, match="emitter bug"):
        gc.compile(twin_convs(), target="llvm", cache=False)
    assert pids
    for pid in pids:  # killed and reaped, not left as zombies
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_collect_without_submit_compiles_here():
    graph = gc.optimize(twin_convs())
    lowered = lower_mod.lower(for_llvm(graph), 16, "graphcnn_weights_t")
    builder = codegen.ObjectBuilder("host")
    obj = builder.collect(*lowered.kernel_modules[0])
    assert isinstance(obj, bytes) and obj
    builder.close()


def test_weights_arena_aligned_zero_padded():
    # chunks at 64-byte offsets, the padding between them zero
    ctx = base.EmitContext(ir.Module(name="m"), 16, "w")
    chunks = [np.arange(5, dtype=np.float32), np.full((3, 7), 2.5, np.float32),
              np.ones(16, np.float32)]
    offsets = [ctx.add_weights(c) for c in chunks]
    blob = ctx.weights_blob()
    assert blob.dtype == np.uint8 and blob.ctypes.data % 64 == 0
    assert blob.nbytes == ctx.weights_bytes and offsets == [0, 64, 192]
    floats = blob.view(np.float32)
    want = np.zeros(ctx.weights_bytes // 4, np.float32)
    for off, c in zip(offsets, chunks):
        want[off // 4:off // 4 + c.size] = c.reshape(-1)
    np.testing.assert_array_equal(floats, want)


def test_gc_paused_restores_the_collector_state():
    assert collector.isenabled()
    with pytest.raises(RuntimeError), lower_mod.gc_paused():
        assert not collector.isenabled()
        raise RuntimeError("lowering failed")
    assert collector.isenabled()
    collector.disable()
    try:
        with lower_mod.gc_paused():
            pass
        assert not collector.isenabled()  # a caller's own choice is kept
    finally:
        collector.enable()


def test_unknown_cpu_is_a_compile_error_listing_valid_names():
    """LLVM aborts the process on an unknown CPU name, so this runs in a child: a crash fails
    the test instead of killing pytest."""
    import subprocess
    import sys

    script = (
        "import graphcnn as gc\n"
        "g = gc.Sequential(gc.Conv2d(1, 2, 3, seed=0), gc.ReLU()).build((1, 1, 6, 6))\n"
        "for cache in (True, False):\n"
        "    try:\n"
        "        gc.compile(g, target='llvm', cpu='notacpu', cache=cache)\n"
        "    except gc.CompileError as e:\n"
        "        print(type(e).__name__, e)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("InvalidOptionError unknown cpu 'notacpu'; valid: 'host', ")
        assert "'generic'" in line and "haswell" in line.split("valid:")[1]


def test_known_cpu_names_come_from_llvm_and_compile():
    names = codegen.known_cpus()
    assert "x86-64" in names and "notacpu" not in names and len(names) > 20
    assert codegen.known_cpus() is names  # asked once per process
    with pytest.raises(CompileError, match="cpu must be a str"):
        codegen.cpu_and_features(3)
    graph = gc.Sequential(gc.Conv2d(2, 4, 3, seed=0), gc.ReLU()).build((1, 2, 7, 7))
    x = rnd(1, 2, 7, 7)
    cm = gc.compile(graph, target="llvm", cpu="x86-64", cache=False)
    assert rel_l2(cm(x), interpret(graph, [x])[0]) < 1e-5
