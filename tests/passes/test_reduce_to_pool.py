"""reduce-to-global-pool: one test per rule, the no-op cases, and the head the dynamo exporter
writes for a torchvision ResNet (ReduceMean with axes [-1, -2] as an input, keepdims=1,
Flatten, Gemm), which must stay blocked from the last conv to the global pool."""
from __future__ import annotations

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from graphcnn.passes.reduce_to_pool import reduce_to_global_pool
from onnx import TensorProto, helper, numpy_helper
from pass_cases import check_pass, ops

import graphcnn as gc
from graphcnn.ir import Graph


def _graph(op: str, shape, axes, keepdims: int) -> Graph:
    g = Graph("g")
    x = g.add_input("x", shape)
    g.set_outputs([g.apply("relu", [g.apply(op, [g.apply("relu", [x])],
                                           {"axes": axes, "keepdims": keepdims})])])
    return g


@pytest.mark.parametrize("axes", [(2, 3), (-1, -2), (3, 2)])
def test_rule1_mean_over_hw_keepdims(axes):
    out = check_pass(_graph("reduce_mean", (2, 5, 6, 7), axes, 1), reduce_to_global_pool)
    assert ops(out) == ["relu", "global_avg_pool", "relu"]


def test_rule1_max_over_time_is_a_global_max_pool():
    out = check_pass(_graph("reduce_max", (2, 5, 9), (-1,), 1), reduce_to_global_pool)
    assert ops(out) == ["relu", "global_max_pool", "relu"]


@pytest.mark.parametrize("op,pool", [("reduce_mean", "global_avg_pool"),
                                     ("reduce_max", "global_max_pool")])
def test_rule2_keepdims0_adds_a_squeezing_view(op, pool):
    out = check_pass(_graph(op, (2, 5, 6, 7), (2, 3), 0), reduce_to_global_pool)
    assert ops(out) == ["relu", pool, "reshape", "relu"]
    assert out.outputs[0].type.shape == (2, 5)


@pytest.mark.parametrize("op,shape,axes", [
    ("reduce_mean", (2, 5, 6, 7), (1,)),        # channels
    ("reduce_mean", (2, 5, 6, 7), (3,)),        # one spatial axis of two
    ("reduce_mean", (2, 5, 6, 7), ()),          # everything, the batch too
    ("reduce_sum", (2, 5, 6, 7), (2, 3)),       # not a pool
    ("reduce_mean", (5, 6), (1,)),              # no spatial axes
])
def test_noop_cases(op, shape, axes):
    check_pass(_graph(op, shape, axes, 1), reduce_to_global_pool, changed=False)


def _resnet_head_model(keepdims: int = 1) -> bytes:
    """conv -> relu -> conv -> relu -> ReduceMean(axes input [-1, -2]) -> Flatten -> Gemm at
    opset 18, as torch.onnx.export(dynamo=True) writes a torchvision ResNet's head."""
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.2, name)
    inits = [init("w1", 32, 3, 3, 3), init("b1", 32), init("w2", 64, 32, 3, 3), init("b2", 64),
             init("fc_w", 10, 64), init("fc_b", 10),
             numpy_helper.from_array(np.array([-1, -2], np.int64), "axes")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("ReduceMean", ["r2", "axes"], ["mean"], keepdims=keepdims),
             helper.make_node("Flatten", ["mean"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1)]
    g = helper.make_graph(nodes, "head", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 16, 16])], [helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, [1, 10])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


@pytest.mark.parametrize("keepdims", [1, 0])
@pytest.mark.parametrize("opt_level", [2, 3])
def test_dynamo_resnet_head_stays_blocked(opt_level, keepdims):
    graph = gc.from_onnx(_resnet_head_model(keepdims))
    opt = gc.optimize(graph, opt_level=opt_level, target="llvm")
    names = ops(opt)
    assert "reduce_mean" not in names and "global_avg_pool" in names
    pool = next(n for n in opt.nodes if n.op == "global_avg_pool")
    assert pool.attrs["layout"] == "NCHWc"
    last_conv = max(i for i, n in enumerate(opt.nodes) if n.op == "conv")
    between = [n.op for n in opt.nodes[last_conv:opt.nodes.index(pool)]]
    assert "to_blocked" not in between and "from_blocked" not in between, names
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    want = interpret(graph, [x])[0]
    for target in ("llvm", "onnxruntime"):
        got = gc.compile(graph, target=target, opt_level=opt_level)(x)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
