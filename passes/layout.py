"""Blocked layout NCHW[b]c for conv regions (llvm target only), with the fewest conversions.

Walks the nodes in topological order keeping `twin`: logical NCHW value -> the blocked value
holding the same data. A node that can run blocked and whose input has a twin (a conv may also
create one) is rebuilt blocked, followed by a `from_blocked` that takes over its logical uses;
the twin of that `from_blocked` is the blocked value, so the next blocked consumer reads the
blocked tensor directly. Dead-code elimination then drops every `from_blocked` no NCHW consumer
needs: a region gets one `to_blocked` per entering value and one `from_blocked` per value
leaving it (shared by all its NCHW consumers).
1. conv (2-D, NCHW, constant weight/bias, groups 1, depthwise, or grouped at most
   MAX_GROUPED_OVERHEAD times the useful multiply-adds: an output block straddling groups
   reduces over all their inputs; groups of a few lanes, as many in as out, dividing the
   block, run on the lane-group kernel instead, without that waste) with at least 4 output
   channels, or any number when its input has a twin (a squeeze-excitation's 2-channel
   squeeze: 4 lanes, no conversions), is blocked. Output block =
   `block`, or for fewer than block/2 output channels the smallest of 4, 8, ... that holds
   them (LeNet's 6 channels: 8 lanes, not 16 with 10 wasted; the register-tiled kernel still
   beats the plain-layout one by 10x there). Input: its twin if it has one; else to_blocked
   with block `block`, or, for C_in < block (an image's 3 channels), one block of C_in
   channels, which pads nothing (one channel: a reshape, the same bytes). A depthwise or
   lane-group conv needs input block = output block. A residual input gets a twin with the
   output block.
2. an activation that is zero-preserving for its params (the activation table: relu,
   leaky_relu, clip with min <= 0 <= max, ...) runs on the twin: it maps the zero-padded
   channels to zero.
2b. one with act(0) != 0 (sigmoid: 0 -> 0.5) runs on the twin only when a binary op reads it
   that brings the padding lanes back to zero (x * sigmoid(x), EfficientNet's SiLU): its output
   is a "dirty" twin (padding lanes act(0), finite), which only rule 3 reads; every other
   consumer, to_blocked included, takes the logical value. Otherwise it ends the region.
   Dirtiness is read off the producer (`is_dirty`), so a second run sees the same.
3. a binary elementwise op (the BINARY_OPS table) whose output is 4-D runs blocked when each
   input is a twin with the output's channels and one block (other dims equal or broadcast:
   squeeze-excitation's (N,C,H,W) * (N,C,1,1)), or a constant that is a scalar or per-channel
   ((C,1,1), (1,C,1,1)). Constants are padded to the blocked channels, (1, C/b, 1, 1, b), with
   a fill z from (0, 1) for which f over the inputs' padding values is exactly 0 (mul, add:
   0; a divisor: 1); a scalar the op already maps to 0 stays as it is. So the output's padding
   lanes are zero again: mul(x, sigmoid) with 0 * 0.5, add(x, c) with 0 + 0.
4. the blockable pools of the pool table (max/avg/sum/Lp pools and global pools) and
   adaptive_avg_pool run blocked with layout="NCHWc" (per-channel).
5. concat on axis 1 runs blocked when all inputs have twins with the same block and every
   input's channel count is a multiple of it (no padding inside the result); when all inputs
   have twins but some count does not fill its blocks (a DenseNet's growth of 8 channels), it
   becomes blocked_concat, which repacks the lanes into blocks of the largest input block.
5b. batch_norm with constant parameters and no fused activation or one with act(0) = 0 runs
   blocked on its input's twin (DenseNet's BN + ReLU on each concat): the parameters are padded
   to every blocked channel with scale 0, bias 0, mean 0, var 1, so padding channels stay 0.
5c. channel_shuffle runs blocked on its input's twin (padding lanes stay zero).
5d. channel_norm (a layer norm over the channels, ConvNeXt's) with constant scale and bias runs
   blocked on its input's twin: scale and bias are padded with zeros (padding channels stay 0)
   and the statistics skip the padding lanes.
5e. group_norm that is an instance norm (one group per channel; epsilon > 0) with constant
   scale and bias runs blocked on its input's twin, every blocked channel its own group and
   scale and bias padded with zeros (a zero padding channel normalises to zero).
5f. split on axis 1 runs blocked on its input's twin when every part's channel count is a
   multiple of the block (ShuffleNet-v2's halves): a split of whole channel blocks.
5g. otherwise (ShuffleNet-v2's halves of 58 channels) it becomes blocked_split, which repacks
   each part's lanes into blocks of the input's block, padding zero (the inverse of
   blocked_concat, which then joins the halves again).
5h. slices of one twin's logical value that take runs of channels (and all of every other
   axis) and together cut all its channels into parts (TorchScript's chunk into halves) are
   one split, by rules 5f/5g.
5i. resize over the spatial axes only (N and C kept, scale 1) runs on its input's twin as a
   rank-5 resize whose block axis is kept too (FCN's / LR-ASPP's upsampling between convs):
   each lane interpolates on its own, padding lanes stay zero unless a tf_crop_and_resize
   extrapolates a non-zero value (then it stays NCHW).
5j. pad of the spatial axes only (reflect / edge / wrap, or constant 0) runs on its input's
   twin with the block axis unpadded: padding lanes copy zeros.
6. Everything else reads the logical value (through the from_blocked, kept by rule 7).
7. Conversions nobody reads are removed (dead-code elimination at the end of the pass).
"""
from __future__ import annotations

import numpy as np

from graphcnn.ir import Graph, Node, Value
from graphcnn.ops import ACTIVATIONS, BINARY_OPS, BLOCKED_POOLS, preserves_zero
from graphcnn.ops.layout import grouped_overhead

from .blocked_padding import is_dirty, padding_value, per_channel, zero_fill
from .conv_kernels import lane_group_size
from .dce import eliminate_dead_code
from .util import adopt_name, replace_node

DEFAULT_BLOCK = 16
MIN_BLOCKED_CHANNELS = 4  # the narrowest vector the conv kernels take
# ShuffleNet's g=3 1x1 convs: 1.0-1.6x, and blocked they run ~2x faster than the NCHW kernel
# without the layout changes around them (groups of a few lanes dividing the block, ResNeXt's
# 4 channels, take the lane-group kernel, which has no such waste)
MAX_GROUPED_OVERHEAD = 2.0


class _Blocker:
    def __init__(self, graph: Graph, block: int):
        self.graph, self.block = graph, block
        self.twin: dict[int, Value] = {}
        self.other_blocks: dict[tuple[int, int], Value] = {}
        self.rebuilt = 0
        self.removed: set[int] = set()
        for node in graph.nodes:  # exits of an earlier run: their blocked source comes first
            if node.op == "from_blocked":
                self.twin[id(node.outputs[0])] = node.inputs[0]

    def clean(self, v: Value) -> Value | None:
        """v's blocked twin when its padding lanes are zero (every reader but rule 3's)."""
        t = self.twin.get(id(v))
        return None if t is None or is_dirty(t) else t

    def to_blocked(self, v: Value, block: int, before: Node) -> Value:
        """The blocked twin of v with this block: the existing one, or one to_blocked of v
        (v itself stays the logical value, so a second block size never needs from_blocked)."""
        t = self.clean(v)
        if t is not None and t.type.shape[-1] == block:
            return t
        key = (id(v), block)
        if key not in self.other_blocks:
            if v.shape[1] == block == 1:  # one channel: the same bytes, a view (no copy)
                shape = v.shape + (1,)
                self.other_blocks[key] = self.graph.apply(
                    "reshape", [v], {"shape": shape}, name=f"{v.name}.blocked", before=before)
            else:
                self.other_blocks[key] = self.graph.apply(
                    "to_blocked", [v], {"block": block}, name=f"{v.name}.blocked", before=before)
            self.twin.setdefault(id(v), self.other_blocks[key])
        return self.other_blocks[key]

    def rebuild(self, node: Node, inputs: list[Value], **attrs) -> None:
        """node -> blocked node + from_blocked taking over the logical uses."""
        channels = node.outputs[0].shape[1]
        y = self.graph.apply(node.op, inputs, {**node.attrs, **attrs}, name=node.name,
                             before=node)
        logical = self.graph.apply("from_blocked", [y], {"channels": channels},
                                   name=f"{node.name}.nchw", before=node)
        self.twin[id(logical)] = y
        self.rebuilt += 1
        replace_node(self.graph, node, logical)
        adopt_name(y, node)

    def conv(self, node: Node) -> None:  # Rule 1
        a, x, w = node.attrs, node.inputs[0], node.inputs[1].type.shape
        c_in, c_out = x.shape[1], w[0]
        depthwise = a["groups"] == c_in == c_out and w[1] == 1
        t = self.clean(x)
        if (a["layout"] != "NCHW" or x.type.rank != 4
                or (c_out < MIN_BLOCKED_CHANNELS and t is None)
                or not all(v.is_constant for v in node.inputs[1:3])):
            return
        ob = self.out_block(c_out)
        lanes = lane_group_size(c_in, c_out, a["groups"], ob)
        if depthwise or lanes is not None:
            ib = ob
        elif t is not None:
            ib = t.type.shape[-1]
        else:
            ib = min(self.block, c_in)
        if (a["groups"] != 1 and not depthwise and lanes is None
                and grouped_overhead(c_in, c_out, a["groups"], ib, ob) > MAX_GROUPED_OVERHEAD):
            return
        ins = [self.to_blocked(x, ib, node)] + list(node.inputs[1:3])
        if a["residual"]:
            ins.append(self.to_blocked(node.inputs[3], ob, node))
        self.rebuild(node, ins, layout="NCHWc", out_block=ob)

    def out_block(self, channels: int) -> int:
        if 2 * channels >= self.block:
            return self.block
        b = MIN_BLOCKED_CHANNELS
        while b < channels:
            b *= 2
        return b

    def activation(self, node: Node) -> None:  # Rules 2, 2b
        t = self.clean(node.inputs[0])
        if t is None:
            return
        act = ACTIVATIONS[node.op]
        params = act.params(node.attrs)
        if not act.preserves_zero(params):
            pad = act.numpy(np.zeros(1, np.float32), *params)
            if not np.isfinite(pad).all() or not any(
                    self.restores_zero(user, node.outputs[0], float(pad[0]))
                    for user in node.outputs[0].users()):
                return
        self.rebuild(node, [t])

    def restores_zero(self, user: Node, v: Value, pad: float) -> bool:
        """Rule 2b: `user` is a binary op reading v (padding lanes `pad`) beside clean twins
        and constants only, which maps the padding back to zero (0 * pad)."""
        if user.op not in BINARY_OPS:
            return False
        pads = [pad if u is v else 0.0 for u in user.inputs]
        others = [u for u in user.inputs if u is not v]
        c = user.outputs[0].shape[1] if user.outputs[0].type.rank == 4 else -1
        return (all(self.clean(u) is not None or per_channel(u, c) is not None for u in others)
                and zero_fill(BINARY_OPS[user.op], pads, [False] * len(pads)) is not None)

    def binary(self, node: Node) -> None:  # Rule 3
        out = node.outputs[0]
        if out.type.rank != 4:
            return
        c = out.shape[1]
        twins = [self.twin.get(id(v)) for v in node.inputs]
        blocks = {t.type.shape[-1] for t in twins if t is not None and t.type.rank == 5}
        if len(blocks) != 1 or any(
                t is not None and (t.type.rank != 5 or v.type.rank != 4 or v.shape[1] != c)
                for v, t in zip(node.inputs, twins)):
            return
        block = blocks.pop()
        values = [None if t is not None else per_channel(v, c)
                  for v, t in zip(node.inputs, twins)]
        if any(t is None and d is None for t, d in zip(twins, values)):
            return  # an input that is neither a twin nor a per-channel constant
        op = BINARY_OPS[node.op]
        constant = [t is None for t in twins]
        pads = [0.0 if t is None else padding_value(t) for t in twins]
        # a scalar constant as it is, when the op maps the padding lanes to 0 with its value
        kept = [t is None and v.type.size == 1 for v, t in zip(node.inputs, twins)]
        seen = [float(v.data.reshape(())) if k else p for v, k, p in zip(node.inputs, kept, pads)]
        fill = zero_fill(op, seen, [c_ and not k for c_, k in zip(constant, kept)])
        if fill is None:
            kept = [False] * len(kept)
            fill = zero_fill(op, pads, constant)
        if fill is None:
            return
        cb = -(-c // block)
        ins = []
        for v, t, d, k in zip(node.inputs, twins, values, kept):
            if t is not None or k:
                ins.append(t if t is not None else v)
                continue
            data = np.full(cb * block, fill, np.float32)
            data[:c] = d
            ins.append(self.graph.add_constant(data.reshape(1, cb, 1, 1, block),
                                               name=f"{v.name}.blocked"))
        self.rebuild(node, ins)

    def pool(self, node: Node) -> None:  # Rule 4
        t = self.clean(node.inputs[0])
        if t is not None and t.type.rank == 5 and node.attrs["layout"] == "NCHW":
            self.rebuild(node, [t], layout="NCHWc")

    def concat(self, node: Node) -> None:  # Rule 5
        twins = [self.clean(v) for v in node.inputs]
        if node.attrs["axis"] != 1 or any(t is None for t in twins):
            return
        b = twins[0].type.shape[-1]
        if any(t.type.shape[-1] != b for t in twins) or any(v.shape[1] % b for v in node.inputs):
            self.repacked_concat(node, twins)
            return
        self.rebuild(node, twins)

    def repacked_concat(self, node: Node, twins: list[Value]) -> None:  # Rule 5, repacked
        block = max(t.type.shape[-1] for t in twins)
        y = self.graph.apply("blocked_concat", twins, {
            "channels": [v.shape[1] for v in node.inputs], "block": block}, name=node.name,
            before=node)
        logical = self.graph.apply("from_blocked", [y], {"channels": node.outputs[0].shape[1]},
                                   name=f"{node.name}.nchw", before=node)
        self.twin[id(logical)] = y
        self.rebuilt += 1
        replace_node(self.graph, node, logical)
        adopt_name(y, node)

    def padded(self, params: list[Value], t: Value, fills: tuple[float, ...]) -> list[Value]:
        """Per-channel constants padded to every channel of the blocked twin `t`, each padding
        channel holding its `fills` value (chosen so padding channels stay zero)."""
        channels = t.type.shape[1] * t.type.shape[-1]
        out = []
        for p, fill in zip(params, fills):
            data = np.full(channels, fill, np.float32)
            data[:p.data.shape[0]] = p.data
            out.append(self.graph.add_constant(data, name=f"{p.name}.blocked"))
        return out

    def batch_norm(self, node: Node) -> None:  # Rule 5b
        t = self.clean(node.inputs[0])
        params = node.inputs[1:]
        if (t is None or node.attrs["layout"] != "NCHW" or t.type.rank != 5
                or not all(p.is_constant for p in params)
                or not preserves_zero(node.attrs["activation"], node.attrs["activation_params"])):
            return
        padded = self.padded(params, t, (0.0, 0.0, 0.0, 1.0))  # scale, bias, mean, var
        self.rebuild(node, [t] + padded, layout="NCHWc")

    def channel_norm(self, node: Node) -> None:  # Rule 5d
        t = self.clean(node.inputs[0])
        params = node.inputs[1:]
        if (t is None or node.attrs["layout"] != "NCHW" or t.type.rank < 4
                or not all(p.is_constant for p in params)):
            return
        padded = self.padded(params, t, (0.0,) * len(params))
        self.rebuild(node, [t] + padded, layout="NCHWc", channels=node.attrs["channels"])

    def instance_norm(self, node: Node) -> None:  # Rule 5e
        t = self.clean(node.inputs[0])
        params = node.inputs[1:]
        if (t is None or node.attrs["layout"] != "NCHW" or t.type.rank != 5
                or node.attrs["num_groups"] != node.inputs[0].shape[1]
                or not node.attrs["epsilon"] > 0 or not all(p.is_constant for p in params)):
            return
        padded = self.padded(params, t, (0.0,) * len(params))
        channels = t.type.shape[1] * t.type.shape[-1]  # every blocked channel its own group
        self.rebuild(node, [t] + padded, layout="NCHWc", num_groups=channels)

    def channel_shuffle(self, node: Node) -> None:  # Rule 5c
        t = self.clean(node.inputs[0])
        if t is not None and t.type.rank >= 4 and node.attrs["layout"] == "NCHW":
            self.rebuild(node, [t], layout="NCHWc", channels=node.attrs["channels"])


    def resize(self, node: Node) -> None:  # Rule 5i
        t, a = self.clean(node.inputs[0]), node.attrs
        x = node.inputs[0]
        if (t is None or t.type.rank != 5 or a["sizes"][:2] != x.shape[:2]
                or a["scales"][:2] != (1.0, 1.0) or (a["extrapolation_value"] != 0 and
                                                     a["coordinate_transformation_mode"]
                                                     == "tf_crop_and_resize")):
            return
        sizes = (t.type.shape[0], t.type.shape[1]) + a["sizes"][2:] + (t.type.shape[-1],)
        roi = ()
        if a["roi"]:
            roi = (0.0, 0.0) + a["roi"][2:4] + (0.0, 1.0, 1.0) + a["roi"][6:8] + (1.0,)
        self.rebuild(node, [t], sizes=sizes, scales=(1.0, 1.0) + a["scales"][2:] + (1.0,),
                     roi=roi)

    def pad(self, node: Node) -> None:  # Rule 5j
        t, a = self.clean(node.inputs[0]), node.attrs
        p = a["pads"]
        if (t is None or t.type.rank != 5 or any(p[i] for i in (0, 1, 4, 5))
                or (a["mode"] == "constant" and a["value"] != 0)):
            return
        self.rebuild(node, [t], pads=(0, 0) + p[2:4] + (0, 0, 0) + p[6:8] + (0,))

    def split(self, node: Node) -> None:  # Rules 5f, 5g
        t = self.clean(node.inputs[0])
        if t is not None and t.type.rank >= 5 and node.attrs["axis"] == 1:
            self.split_channels(t, list(node.attrs["split"]), [node], list(node.outputs))

    def channel_slices(self, node: Node) -> None:  # Rule 5h
        x = node.inputs[0]
        t = self.clean(x)
        if t is None or t.type.rank < 5:
            return
        slices = {}
        for user in x.users():
            r = _channel_range(user)
            if r is not None:
                slices[id(user)] = (r, user)
        found = sorted(slices.values(), key=lambda s: s[0])
        ends = [0] + [start + size for (start, size), _ in found]
        if not found or any(start != ends[i] for i, ((start, _), _) in enumerate(found)) \
                or ends[-1] != x.shape[1]:
            return  # the slices do not cut the channels into parts
        users = [u for _, u in found]
        first = min(users, key=self.graph.nodes.index)
        ordered = [first] + [u for u in users if u is not first]
        self.split_channels(t, [size for (_, size), _ in found], ordered,
                            [u.outputs[0] for u in users])

    def split_channels(self, t: Value, sizes: list[int], nodes: list[Node],
                       olds: list[Value]) -> None:
        """`nodes` (a split, or slices) cut t's logical channels into `sizes` (the values
        `olds`): one split of whole blocks, or a blocked_split, before nodes[0]."""
        b, first = t.type.shape[-1], nodes[0]
        if any(size % b for size in sizes):  # Rule 5g
            parts = self.graph.add_node("blocked_split", [t], {"channels": sizes, "block": b},
                                        name=first.name, before=first).outputs
        else:
            parts = self.graph.add_node("split", [t], {"axis": 1, "split": [
                size // b for size in sizes]}, name=first.name, before=first).outputs
        logicals = []
        for old, y in zip(olds, parts):
            logical = self.graph.apply("from_blocked", [y], {"channels": old.shape[1]},
                                       name=f"{old.name}.nchw", before=first)
            self.twin[id(logical)] = y
            logicals.append(logical)
        for old, logical in zip(olds, logicals):
            self.graph.replace_all_uses_with(old, logical)
        for node in nodes:
            self.graph.remove(node)
            self.removed.add(id(node))
        parts[0].producer.name = first.name  # names stay stable across passes (adopt_name)
        for old, y in zip(olds, parts):
            y.name = old.name
        self.rebuilt += 1


def _channel_range(node: Node) -> tuple[int, int] | None:
    """(first channel, count) of a slice that takes a run of channels and all of every other
    axis of a 4-D tensor."""
    if node.op != "slice" or node.inputs[0].type.rank != 4:
        return None
    a, shape = node.attrs, node.inputs[0].shape
    if any(s != 1 for s in a["steps"]) or any(
            a["starts"][i] != 0 or a["shape"][i] != shape[i] for i in (0, 2, 3)):
        return None
    return a["starts"][1], a["shape"][1]


def choose_layout(graph: Graph, block: int = DEFAULT_BLOCK) -> bool:
    blocker = _Blocker(graph, block)
    for node in list(graph.nodes):
        if id(node) in blocker.removed:
            continue  # a sibling slice that rule 5h replaced already
        if node.op == "conv":
            blocker.conv(node)
        elif node.op in ACTIVATIONS:
            blocker.activation(node)
        elif node.op in BINARY_OPS:
            blocker.binary(node)
        elif node.op in BLOCKED_POOLS or node.op == "adaptive_avg_pool":
            blocker.pool(node)
        elif node.op == "concat":
            blocker.concat(node)
        elif node.op == "batch_norm":
            blocker.batch_norm(node)
        elif node.op == "channel_shuffle":
            blocker.channel_shuffle(node)
        elif node.op == "split":
            blocker.split(node)
        elif node.op == "resize":
            blocker.resize(node)
        elif node.op == "pad":
            blocker.pad(node)
        elif node.op == "slice":
            blocker.channel_slices(node)
        elif node.op == "channel_norm":
            blocker.channel_norm(node)
        elif node.op == "group_norm":
            blocker.instance_norm(node)
    removed = eliminate_dead_code(graph)  # Rule 7
    return blocker.rebuilt > 0 or removed
