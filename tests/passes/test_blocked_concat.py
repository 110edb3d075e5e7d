"""choose-layout rule 5, repacked: a channel concat whose inputs do not fill their blocks (a
DenseNet's growth of 8 channels, blocks of 16 and 8) becomes blocked_concat, so the batch norms
after it run blocked and no conversion is left inside the network."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from graphcnn.backends.reference import interpret
from pass_cases import rel_l2

import graphcnn as gc
from graphcnn.models import densenet121


@pytest.mark.parametrize("opt_level", [2, 3])
def test_narrow_densenet_is_blocked_end_to_end(opt_level):
    graph = densenet121(width=0.25, size=32, blocks=(3, 2))
    opt = gc.optimize(graph, opt_level=opt_level, target="llvm")
    ops = Counter(n.op for n in opt.nodes)
    assert ops["blocked_concat"] == 5 and ops["concat"] == 0
    # one conversion in (the image), none out: the dense layer reads the pooled blocks, the
    # padding lanes of the head's 60 channels with zero weights
    assert ops["to_blocked"] == 1 and ops["from_blocked"] == 0, ops
    view = next(n for n in opt.nodes if n.op == "reshape")
    assert view.inputs[0].producer.op == "global_avg_pool"
    assert {n.attrs["layout"] for n in opt.nodes if n.op == "batch_norm"} == {"NCHWc"}
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = interpret(graph, [x])[0]
    for target in ("llvm", "onnxruntime"):
        got = gc.compile(graph, target=target, opt_level=opt_level)(x)
        assert rel_l2(got, want) < 1e-5


def test_blocks_that_fill_stay_a_plain_concat():
    graph = densenet121(width=0.5, size=32, blocks=(2,))
    ops = Counter(n.op for n in gc.optimize(graph, opt_level=2, target="llvm").nodes)
    assert ops["concat"] == 2 and ops["blocked_concat"] == 0
