from __future__ import annotations

import pytest
from graphcnn.passes.dense_blocked import read_blocked_features
from pass_cases import check_pass, const, ops

from graphcnn.ir import Graph


def _head(channels: int = 32, block: int = 16, size: int = 3, batch: int = 2, trans_b: bool = True,
          flatten: str = "flatten", extra_use: bool = False) -> Graph:
    """x (blocked) -> from_blocked -> flatten | reshape -> gemm with a constant B."""
    g = Graph("t")
    x = g.add_input("x", (batch, -(-channels // block), size, size, block))
    y = g.apply("from_blocked", [x], {"channels": channels})
    features = channels * size * size
    if flatten == "flatten":
        flat = g.apply("flatten", [y], {"axis": 1})
    else:
        flat = g.apply("reshape", [y], {"shape": (batch, features)})
    shape = (10, features) if trans_b else (features, 10)
    out = g.apply("gemm", [flat, const(g, shape, 1), const(g, (10,), 2)], {"transB": int(trans_b)})
    g.set_outputs([out, g.apply("relu", [y])] if extra_use else [out])
    return g


@pytest.mark.parametrize("trans_b", [True, False])
@pytest.mark.parametrize("flatten", ["flatten", "reshape"])
def test_gemm_reads_the_blocked_map_through_a_view(trans_b, flatten):
    out = check_pass(_head(trans_b=trans_b, flatten=flatten), read_blocked_features)
    assert ops(out) == ["reshape", "gemm"]  # no from_blocked kernel left
    assert out.nodes[0].inputs[0] is out.inputs[0]


def test_other_uses_keep_the_logical_map():
    out = check_pass(_head(extra_use=True), read_blocked_features)
    assert ops(out) == ["from_blocked", "reshape", "gemm", "relu"]
    assert out.nodes[2].inputs[0].producer.op == "reshape"


@pytest.mark.parametrize("trans_b", [True, False])
def test_padding_lanes_get_zero_weight_columns(trans_b):
    """24 channels in blocks of 16: the gemm reads all 32 lanes, the 8 padding lanes' columns
    zero (the random input's padding lanes are not, so a non-zero column would show)."""
    out = check_pass(_head(channels=24, trans_b=trans_b), read_blocked_features)
    assert ops(out) == ["reshape", "gemm"]
    w = out.nodes[1].inputs[1].data
    w = (w if trans_b else w.T).reshape(10, 2, 3, 3, 16)
    assert not w[:, 1, :, :, 8:].any() and w[:, 0].all()


def test_a_non_constant_weight_is_left_alone():
    g = Graph("t")
    x = g.add_input("x", (1, 1, 2, 2, 16))
    w = g.add_input("w", (10, 64))
    flat = g.apply("flatten", [g.apply("from_blocked", [x], {"channels": 16})], {"axis": 1})
    g.set_outputs([g.apply("gemm", [flat, w], {"transB": 1})])
    check_pass(g, read_blocked_features, changed=False)
