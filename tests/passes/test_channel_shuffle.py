from __future__ import annotations

from graphcnn.passes.channel_shuffle import fuse_channel_shuffle
from pass_cases import check_pass, conv_graph, ops


def shuffle(g, y, groups: int, perm=(0, 2, 1, 3, 4)):
    n, c, h, w = y.type.shape
    y = g.apply("reshape", [y], {"shape": (n, groups, c // groups, h, w)})
    y = g.apply("transpose", [y], {"perm": perm})
    return g.apply("reshape", [y], {"shape": (n, c, h, w)})


def test_rule1_reshape_transpose_reshape_becomes_one_op():
    g, y = conv_graph(c_in=4, c_out=12, k=1, size=5)
    g.set_outputs([g.apply("relu", [shuffle(g, y, 3)])])
    out = check_pass(g, fuse_channel_shuffle)
    assert ops(out) == ["conv", "channel_shuffle", "relu"]
    assert out.nodes[1].attrs["groups"] == 3


def test_noop_cases():
    g, y = conv_graph(c_in=4, c_out=12, k=1, size=5)  # another permutation: not a shuffle
    g.set_outputs([shuffle(g, y, 3, perm=(0, 1, 2, 4, 3))])
    check_pass(g, fuse_channel_shuffle, changed=False)
    g, y = conv_graph(c_in=4, c_out=12, k=1, size=5)  # the split view is also an output
    out = shuffle(g, y, 4)
    split = out.producer.inputs[0].producer.inputs[0]
    g.set_outputs([out, split])
    check_pass(g, fuse_channel_shuffle, changed=False)
