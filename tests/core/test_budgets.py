"""Resource budgets (graphcnn/budgets.py): nodes, compile time, weights and workspace, each a
typed error naming what is over, raised before the work or the allocation it bounds; and out of
memory within the budgets is a typed error too, never a MemoryError."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import graphcnn as gc
from graphcnn.errors import CompileError, InvalidOptionError, ModelLoadError


def small_cnn() -> gc.Graph:
    gc.manual_seed(0)
    return gc.Sequential(gc.Conv2d(3, 8, 3, padding=1), gc.ReLU(), gc.Flatten(),
                         gc.Linear(8 * 16 * 16, 10)).build((1, 3, 16, 16))


def relu_file(n: int) -> bytes:
    nodes = [h.make_node("Relu", [f"v{k}"], [f"v{k + 1}"]) for k in range(n)]
    graph = h.make_graph(nodes, "chain", [h.make_tensor_value_info("v0", T.FLOAT, [4])],
                         [h.make_tensor_value_info(f"v{n}", T.FLOAT, [4])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]).SerializeToString()


def test_node_budget_refuses_a_graph_at_compile(monkeypatch):
    monkeypatch.setenv("GRAPHCNN_MAX_NODES", "3")
    with pytest.raises(CompileError, match=r"has 4 nodes, over the budget of 3 .*MAX_NODES"):
        gc.compile(small_cnn(), target="llvm", cache=False)


def test_node_budget_refuses_a_file_before_import(monkeypatch):
    monkeypatch.setenv("GRAPHCNN_MAX_NODES", "50")
    gc.from_onnx(relu_file(50))
    with pytest.raises(ModelLoadError, match=r"'chain' has 51 nodes, over the budget of 50"):
        gc.from_onnx(relu_file(51))


def test_time_budget_stops_a_compile_at_a_named_stage(monkeypatch):
    monkeypatch.setenv("GRAPHCNN_COMPILE_TIMEOUT", "1e-9")
    with pytest.raises(CompileError, match=r"stopped at pass '[\w-]+'.*COMPILE_TIMEOUT"):
        gc.compile(small_cnn(), target="llvm", cache=False)
    monkeypatch.setenv("GRAPHCNN_COMPILE_TIMEOUT", "0")  # off
    gc.compile(small_cnn(), target="llvm", cache=False)


def test_weights_budget_names_the_largest_constant(monkeypatch):
    monkeypatch.setenv("GRAPHCNN_MAX_WEIGHTS", "64K")
    with pytest.raises(CompileError, match=r"constants need .* over the budget of 64.0 KiB "
                                           r".*largest: %dense\.weight"):
        gc.compile(small_cnn(), target="llvm", cache=False)


def test_workspace_budget_names_the_largest_activation(monkeypatch):
    monkeypatch.setenv("GRAPHCNN_MAX_WORKSPACE", "4K")
    with pytest.raises(CompileError, match=r"activations need .* over the budget of 4.0 KiB "
                                           r".*largest: %conv \(conv 'conv'\)"):
        gc.compile(small_cnn(), target="llvm", cache=False)


def test_workspace_budget_holds_for_a_cached_model(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHCNN_CACHE_DIR", str(tmp_path))
    gc.compile(small_cnn(), target="llvm")  # stored under the default budget
    monkeypatch.setenv("GRAPHCNN_MAX_WORKSPACE", "4K")
    with pytest.raises(CompileError, match="GRAPHCNN_MAX_WORKSPACE"):
        gc.compile(small_cnn(), target="llvm")


@pytest.mark.parametrize("variable, text", [("GRAPHCNN_MAX_WEIGHTS", "lots"),
                                            ("GRAPHCNN_MAX_WORKSPACE", "0"),
                                            ("GRAPHCNN_MAX_NODES", "-4"),
                                            ("GRAPHCNN_COMPILE_TIMEOUT", "soon")])
def test_a_bad_budget_names_its_variable(monkeypatch, variable, text):
    monkeypatch.setenv(variable, text)
    with pytest.raises(InvalidOptionError, match=variable):
        gc.compile(small_cnn(), target="llvm", cache=False)


def test_out_of_memory_within_the_budgets_is_a_compile_error(monkeypatch):
    from graphcnn.backends.llvm import lower

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate")

    monkeypatch.setattr(lower, "plan", no_memory)
    with pytest.raises(CompileError, match=r"out of memory compiling for llvm .*largest "
                                           r"constants: %dense\.weight"):
        gc.compile(small_cnn(), target="llvm", cache=False)


def test_out_of_memory_importing_is_a_model_load_error(monkeypatch):
    from graphcnn.frontends import onnx_context

    def no_memory(self, array):
        raise MemoryError("Unable to allocate")

    monkeypatch.setattr(onnx_context.Context, "constant", no_memory)
    model = h.make_model(h.make_graph(
        [h.make_node("Constant", [], ["c"], name="k",
                     value=onnx.numpy_helper.from_array(np.ones(4, np.float32))),
         h.make_node("Add", ["x", "c"], ["y"])], "g",
        [h.make_tensor_value_info("x", T.FLOAT, [4])],
        [h.make_tensor_value_info("y", T.FLOAT, [4])]),
        opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(ModelLoadError, match=r"node 'k' \(Constant\): out of memory"):
        gc.from_onnx(model)


# A 530-byte file declaring 5 x 0.9 GiB ConstantOfShape fills, imported under a 4 GiB address
# space limit: the weights budget refuses it before the third fill is allocated.
FILLS = r"""
import resource, sys
import graphcnn as gc
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
try:
    gc.from_onnx(sys.argv[1])
except gc.GraphcnnError as e:
    print(type(e).__name__, e)
"""


def test_a_small_file_of_huge_fills_is_refused_before_allocating(tmp_path):
    n = int(0.9 * 2**30) // 4
    nodes, inits = [], []
    for i in range(5):
        fill = h.make_tensor("v", T.FLOAT, [1], [1.0])
        nodes.append(h.make_node("ConstantOfShape", [f"shape{i}"], [f"c{i}"], value=fill))
        nodes.append(h.make_node("Add", ["x" if i == 0 else f"s{i - 1}", f"c{i}"], [f"s{i}"]))
        inits.append(h.make_tensor(f"shape{i}", T.INT64, [1], [n]))
    graph = h.make_graph(nodes, "fills", [h.make_tensor_value_info("x", T.FLOAT, [n])],
                         [h.make_tensor_value_info("s4", T.FLOAT, None)], inits)
    path = tmp_path / "fills.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)
    assert path.stat().st_size < 1000
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FILLS), str(path)],
                          capture_output=True, text=True, timeout=600, check=False,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ModelLoadError"), proc.stdout
    assert "max_total_bytes" in proc.stdout and "ConstantOfShape" in proc.stdout
