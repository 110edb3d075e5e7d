from __future__ import annotations

from functools import partial

import pytest
from graphcnn.passes.layout import choose_layout
from pass_cases import check_pass, const, ops

from graphcnn.errors import ShapeError
from graphcnn.ir import Graph


def _conv(g: Graph, x, c_out: int, seed: int, k: int = 3, **attrs):
    c_in = x.type.shape[1] // attrs.get("groups", 1)
    pads = (k // 2,) * 4
    return g.apply("conv", [x, const(g, (c_out, c_in, k, k), seed), const(g, (c_out,), seed + 1)],
                   {"pads": pads, **attrs})


def _input(c: int = 3, size: int = 8):
    g = Graph("t")
    return g, g.add_input("x", (1, c, size, size))


def test_rules_1_2_4_7_one_conversion_each_way():
    g, x = _input()
    y = g.apply("relu", [_conv(g, x, 16, 1)])
    y = g.apply("max_pool", [_conv(g, y, 32, 3, activation="relu")], {"kernel_shape": (2, 2),
                                                                      "strides": (2, 2)})
    y = g.apply("clip", [_conv(g, y, 16, 5)], {"min": 0.0, "max": 6.0})
    g.set_outputs([g.apply("global_avg_pool", [y])])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "relu", "conv", "max_pool", "conv", "clip",
                        "global_avg_pool", "from_blocked"]
    assert out.nodes[0].attrs["block"] == 3  # an image's 3 channels: one block, no padding
    assert all(n.attrs["layout"] == "NCHWc" for n in out.nodes if n.op in ("conv", "max_pool"))


def test_rule1_few_channels_get_a_narrow_block():
    g, x = _input(1, 12)
    g.set_outputs([_conv(g, x, 6, 1, k=5)])  # LeNet's first conv: 6 channels
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["reshape", "conv", "from_blocked"]  # one input channel: a view
    assert out.nodes[1].attrs["out_block"] == 8


def test_rule1_three_channels_stay_nchw():
    g, x = _input(1, 12)
    g.set_outputs([_conv(g, x, 3, 1, k=5)])
    check_pass(g, partial(choose_layout, block=16), changed=False)


def test_rule1_depthwise_and_residual():
    g, x = _input(16)
    y = _conv(g, x, 16, 1, groups=16)
    r = g.apply("conv", [y, const(g, (16, 16, 1, 1), 3), const(g, (16,), 4), x],
                {"residual": True})
    g.set_outputs([r])
    out = check_pass(g, partial(choose_layout, block=8))
    assert ops(out) == ["to_blocked", "conv", "conv", "from_blocked"]  # x blocked once, shared


def test_rule2_sigmoid_and_positive_clip_end_the_region():
    g, x = _input(16)
    y = g.apply("sigmoid", [_conv(g, x, 16, 1)])
    z = g.apply("clip", [_conv(g, y, 16, 3)], {"min": 0.5, "max": 6.0})
    g.set_outputs([z])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "from_blocked", "sigmoid", "to_blocked", "conv",
                        "from_blocked", "clip"]


def test_rule3_add_and_rule6_other_consumer():
    g, x = _input(16)
    a, b = _conv(g, x, 16, 1), _conv(g, x, 16, 3)
    s = g.apply("add", [a, b])
    g.set_outputs([g.apply("softmax", [s], {"axis": 1}), g.apply("relu", [s])])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "conv", "add", "from_blocked", "softmax", "relu",
                        "from_blocked"]


def test_rule5_concat_of_block_multiples_or_repacked():
    for c, op in ((16, "concat"), (8, "blocked_concat")):
        g, x = _input(16)
        cat = g.apply("concat", [_conv(g, x, c, 1), _conv(g, x, 16, 3)], {"axis": 1})
        g.set_outputs([_conv(g, cat, 16, 5)])
        out = check_pass(g, partial(choose_layout, block=16))
        assert "from_blocked" not in ops(out)[:-1] and op in ops(out)


def test_noop_without_convs():
    g, x = _input(16)
    g.set_outputs([g.apply("relu", [x])])
    check_pass(g, choose_layout, changed=False)


def test_rule5b_batch_norm_on_a_concat_stays_blocked():
    """DenseNet's layer: concat -> batch_norm -> relu -> conv in one region; 12 + 16 channels
    leave 4 padding lanes, which the padded parameters keep at zero (checked by the conv that
    reads them, against the NCHW graph)."""
    g, x = _input(16)
    cat = g.apply("concat", [_conv(g, x, 16, 1), _conv(g, x, 16, 3)], {"axis": 1})
    cat = g.apply("concat", [cat, _conv(g, cat, 16, 5)], {"axis": 1})
    bn = g.apply("batch_norm", [cat, const(g, (48,), 7), const(g, (48,), 8),
                                const(g, (48,), 9), const(g, (48,), 10, 0.5, 2.0)],
                 {"epsilon": 1e-3})
    y = _conv(g, g.apply("relu", [bn]), 12, 11)
    bn2 = g.apply("batch_norm", [y, const(g, (12,), 12), const(g, (12,), 13),
                                 const(g, (12,), 14), const(g, (12,), 15, 0.5, 2.0)], {})
    g.set_outputs([_conv(g, g.apply("relu", [bn2]), 16, 16)])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out).count("to_blocked") == 1 and ops(out).count("from_blocked") == 1
    bns = [n for n in out.nodes if n.op == "batch_norm"]
    assert [n.attrs["layout"] for n in bns] == ["NCHWc", "NCHWc"]
    assert bns[1].inputs[1].shape == (16,) and not bns[1].inputs[1].data[12:].any()


def test_rule5b_runtime_parameters_keep_batch_norm_nchw():
    g, x = _input(16)
    scale = g.add_input("scale", (16,))
    y = _conv(g, x, 16, 1)
    bn = g.apply("batch_norm", [y, scale, const(g, (16,), 2), const(g, (16,), 3),
                                const(g, (16,), 4, 0.5, 2.0)], {})
    g.set_outputs([bn])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "from_blocked", "batch_norm"]


def test_rule5b_batch_norm_with_sigmoid_stays_nchw():
    g, x = _input(16)
    y = _conv(g, x, 12, 1)
    bn = g.apply("batch_norm", [y, const(g, (12,), 2), const(g, (12,), 3), const(g, (12,), 4),
                                const(g, (12,), 5, 0.5, 2.0)], {"activation": "sigmoid"})
    g.set_outputs([_conv(g, bn, 16, 6)])
    out = check_pass(g, partial(choose_layout, block=16))
    assert [n.attrs["layout"] for n in out.nodes if n.op == "batch_norm"] == ["NCHW"]


def test_rule1_grouped_conv_blocked_unless_groups_waste_lanes():
    """ShuffleNet's g=3 1x1 convs (blocks straddle groups: 1.6x the multiply-adds) run blocked;
    6-channel groups widening to 12 (blocks straddle groups, 2.7x) stay NCHW; 4-channel groups
    as many in as out, 4 to a 16-lane block, take the lane-group kernel (no waste)."""
    g, x = _input(24)
    y = _conv(g, x, 48, 1, k=1, groups=3, activation="relu")
    g.set_outputs([_conv(g, y, 48, 3, k=1, groups=3)])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "conv", "from_blocked"]
    g, x = _input(48)
    g.set_outputs([_conv(g, x, 96, 1, groups=8)])
    check_pass(g, partial(choose_layout, block=16), changed=False)
    g, x = _input(64)
    g.set_outputs([_conv(g, x, 64, 1, groups=16)])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "from_blocked"]


def test_rule5c_channel_shuffle_stays_blocked():
    g, x = _input(48)
    y = g.apply("channel_shuffle", [_conv(g, x, 24, 1, k=1, groups=3)], {"groups": 3})
    g.set_outputs([_conv(g, y, 24, 3, groups=24)])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "channel_shuffle", "conv", "from_blocked"]
    shuffle = out.nodes[2]
    assert shuffle.attrs["layout"] == "NCHWc" and shuffle.attrs["channels"] == 24


def test_rule5d_split_of_whole_blocks_stays_blocked():
    for sizes, blocked in (((16, 16), True), ((8, 24), False)):
        g, x = _input(16)
        a, b = g.add_node("split", [_conv(g, x, 32, 1)], {"axis": 1, "split": sizes}).outputs
        g.set_outputs([_conv(g, g.apply("relu", [a]), 16, 3), _conv(g, b, 16, 5)])
        out = check_pass(g, partial(choose_layout, block=16))
        if blocked:
            assert sorted(ops(out)) == sorted(["to_blocked", "conv", "split", "relu", "conv",
                                               "conv", "from_blocked", "from_blocked"])
            split = next(n for n in out.nodes if n.op == "split")
            assert split.attrs["split"] == (1, 1) and split.inputs[0].type.rank == 5
        else:  # Rule 5g: parts of 8 and 24 channels repacked into blocks of 16
            assert ops(out).count("from_blocked") == 2 and ops(out).count("to_blocked") == 1
            split = next(n for n in out.nodes if n.op == "blocked_split")
            assert split.attrs["channels"] == (8, 24) and split.attrs["block"] == 16



def test_rule5i_spatial_resize_stays_blocked():
    for attrs, blocked in (({"mode": "linear"}, True),
                           ({"mode": "linear", "coordinate_transformation_mode":
                             "tf_crop_and_resize", "roi": (0, 0, 0.1, 0, 1, 1, 0.9, 1),
                             "extrapolation_value": 0.0}, True),
                           ({"mode": "nearest", "coordinate_transformation_mode":
                             "tf_crop_and_resize", "roi": (0, 0, -0.5, 0, 1, 1, 1, 1),
                             "extrapolation_value": 2.0}, False)):
        g, x = _input(8)
        y = g.apply("resize", [_conv(g, x, 20, 1)], {"sizes": (1, 20, 13, 16), **attrs})
        g.set_outputs([_conv(g, y, 8, 3)])
        out = check_pass(g, partial(choose_layout, block=16))
        if blocked:
            assert ops(out) == ["to_blocked", "conv", "resize", "conv", "from_blocked"]
            assert out.nodes[2].attrs["sizes"] == (1, 2, 13, 16, 16)
        else:  # extrapolating 2.0 would fill the padding lanes
            assert ops(out).count("from_blocked") == 2


def test_rule5i_resize_along_channels_stays_nchw():
    g, x = _input(8)
    y = g.apply("resize", [_conv(g, x, 20, 1)], {"sizes": (1, 10, 8, 8), "mode": "linear"})
    g.set_outputs([_conv(g, y, 8, 3)])
    out = check_pass(g, partial(choose_layout, block=16))
    resize = next(n for n in out.nodes if n.op == "resize")
    assert resize.inputs[0].producer.op == "from_blocked" and resize.attrs["sizes"][1] == 10


def test_rule5j_spatial_pad_stays_blocked_unless_it_fills_lanes():
    for attrs, blocked in (({"mode": "reflect"}, True), ({"mode": "edge"}, True),
                           ({"mode": "constant", "value": 0.0}, True),
                           ({"mode": "constant", "value": 1.0}, False)):
        g, x = _input(8)
        y = g.apply("pad", [_conv(g, x, 20, 1)], {"pads": (0, 0, 1, 2, 0, 0, 2, 1), **attrs})
        g.set_outputs([_conv(g, y, 8, 3)])
        out = check_pass(g, partial(choose_layout, block=16))
        assert (ops(out) == ["to_blocked", "conv", "pad", "conv", "from_blocked"]) == blocked


def test_rule5h_channel_slices_that_cut_all_channels_are_one_split():
    """TorchScript's chunk: two slices of 20 + 20 channels (not whole blocks of 16)."""
    g, x = _input(16)
    y = _conv(g, x, 40, 1)
    a = g.apply("slice", [y], {"starts": (0,), "ends": (20,), "axes": (1,)})
    b = g.apply("slice", [y], {"starts": (20,), "ends": (40,), "axes": (1,)})
    cat = g.apply("concat", [_conv(g, b, 20, 3, k=1), a], {"axis": 1})
    g.set_outputs([_conv(g, cat, 16, 5)])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out) == ["to_blocked", "conv", "blocked_split", "conv", "blocked_concat", "conv",
                        "from_blocked"]


def test_rule5h_slices_that_leave_channels_out_stay_nchw():
    g, x = _input(16)
    y = _conv(g, x, 40, 1)
    a = g.apply("slice", [y], {"starts": (0,), "ends": (20,), "axes": (1,)})
    b = g.apply("slice", [y], {"starts": (24,), "ends": (40,), "axes": (1,)})
    g.set_outputs([_conv(g, a, 16, 3), _conv(g, b, 16, 5)])
    out = check_pass(g, partial(choose_layout, block=16))
    assert ops(out).count("slice") == 2


@pytest.mark.parametrize("shape,attrs,match", [
    ((1, 2, 3, 3, 16), {"channels": [8, 8], "block": 16}, "do not fill"),  # 16 of 32 lanes
    ((1, 2, 3, 3, 16), {"channels": [20, 0], "block": 16}, "counts > 0"),
    ((1, 2, 3, 3, 16), {"channels": [20, 4], "block": 0}, "block 0"),
    ((1, 24, 3, 3), {"channels": [20, 4], "block": 16}, "do not fill"),  # not blocked
])
def test_blocked_split_bad_attributes_are_shape_errors(shape, attrs, match):
    g = Graph("t")
    x = g.add_input("x", shape)
    with pytest.raises(ShapeError, match=rf"node 'bad' \(blocked_split\).*{match}"):
        g.add_node("blocked_split", [x], attrs, name="bad")
