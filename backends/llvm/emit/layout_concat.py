"""blocked_concat: blocked inputs whose channels do not fill their blocks, repacked into the
output's blocks, and blocked_split, its inverse: one blocked input cut into parts that do not
fill whole blocks, each repacked (graphcnn/ops/layout.py).

Every output block's lanes come from fixed lanes of fixed input blocks, known at compile time:
for each output block the emitter loads the input blocks it takes lanes from, moves the lanes
into place with shufflevectors and stores the block once (padding lanes zero). A task is a
chunk of positions of one image, with every output block unrolled inside.
"""
from __future__ import annotations

import math

from llvmlite import ir

from graphcnn.ir import Node

from ..builder import I32, for_range, gep, i64, load, splat, store
from .base import EmitContext, emitter

CHUNK = 32  # positions per task


def _sources(channels: list[int], blocks: list[int], block: int, k: int
             ) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """(input, input block) -> [(output lane, input lane)] of output block k."""
    owner = [(i, q) for i, c in enumerate(channels) for q in range(c)]
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for lane in range(block):
        j = k * block + lane
        if j < len(owner):
            i, q = owner[j]
            groups.setdefault((i, q // blocks[i]), []).append((lane, q % blocks[i]))
    return groups


@emitter("blocked_concat")
def emit_blocked_concat(ctx: EmitContext, node: Node) -> None:
    y = node.outputs[0]
    channels, block = list(node.attrs["channels"]), node.attrs["block"]
    blocks = [v.type.shape[-1] for v in node.inputs]
    n, out_blocks = y.type.shape[:2]
    positions = math.prod(y.type.shape[2:-1])
    chunks = -(-positions // CHUNK)
    with ctx.task(node, n * chunks, y.type.size) as (b, env, t):
        image, chunk = b.udiv(t, i64(chunks), name="img"), b.urem(t, i64(chunks), name="chunk")
        start = b.mul(chunk, i64(CHUNK), name="p0")
        stop = b.select(b.icmp_signed("<", b.add(start, i64(CHUNK)), i64(positions)),
                        b.add(start, i64(CHUNK)), i64(positions), name="p1")
        srcs = [gep(b, ctx.ptr(b, env, v, f"in{i}"),
                    b.mul(image, i64(v.type.shape[1] * positions * blocks[i])), f"src{i}")
                for i, v in enumerate(node.inputs)]
        dst = gep(b, ctx.ptr(b, env, y, "out"), b.mul(image, i64(out_blocks * positions * block)),
                  "dst")
        with for_range(b, start, stop, name="p") as p:
            for k in range(out_blocks):
                out = splat(0.0, block)
                for step, ((i, sb), lanes) in enumerate(_sources(channels, blocks, block,
                                                                 k).items()):
                    src_at = b.mul(b.add(i64(sb * positions), p), i64(blocks[i]))
                    v = load(b, srcs[i], src_at, blocks[i], f"x{k}.{step}")
                    pick = dict(lanes)  # output lane -> input lane
                    mask = [block + pick[lane] if lane in pick else lane
                            for lane in range(block)]
                    if blocks[i] != block:  # same width first: move the lanes into a block
                        v = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, block), [
                            pick.get(lane, 0) for lane in range(block)]), name=f"w{k}.{step}")
                        mask = [block + lane if lane in pick else lane for lane in range(block)]
                    out = b.shuffle_vector(out, v, ir.Constant(ir.VectorType(I32, block), mask),
                                           name=f"y{k}.{step}")
                store(b, out, dst, b.mul(b.add(i64(k * positions), p), i64(block)), f"y{k}")


def _split_sources(offset: int, count: int, in_block: int, block: int, k: int
                   ) -> dict[int, list[tuple[int, int]]]:
    """input block -> [(output lane, input lane)] of output block k of the part holding input
    channels [offset, offset + count)."""
    groups: dict[int, list[tuple[int, int]]] = {}
    for lane in range(block):
        q = k * block + lane
        if q < count:
            c = offset + q
            groups.setdefault(c // in_block, []).append((lane, c % in_block))
    return groups


@emitter("blocked_split")
def emit_blocked_split(ctx: EmitContext, node: Node) -> None:
    x = node.inputs[0]
    channels, block = list(node.attrs["channels"]), node.attrs["block"]
    n, in_blocks, in_block = x.type.shape[0], x.type.shape[1], x.type.shape[-1]
    positions = math.prod(x.type.shape[2:-1])
    chunks = -(-positions // CHUNK)
    offsets = [sum(channels[:i]) for i in range(len(channels))]
    with ctx.task(node, n * chunks, x.type.size) as (b, env, t):
        image, chunk = b.udiv(t, i64(chunks), name="img"), b.urem(t, i64(chunks), name="chunk")
        start = b.mul(chunk, i64(CHUNK), name="p0")
        stop = b.select(b.icmp_signed("<", b.add(start, i64(CHUNK)), i64(positions)),
                        b.add(start, i64(CHUNK)), i64(positions), name="p1")
        src = gep(b, ctx.ptr(b, env, x, "in"), b.mul(image, i64(in_blocks * positions * in_block)),
                  "src")
        dsts = [gep(b, ctx.ptr(b, env, y, f"out{i}"),
                    b.mul(image, i64(y.type.shape[1] * positions * block)), f"dst{i}")
                for i, y in enumerate(node.outputs)]
        with for_range(b, start, stop, name="p") as p:
            for i, y in enumerate(node.outputs):
                for k in range(y.type.shape[1]):
                    out = splat(0.0, block)
                    for step, (sb, lanes) in enumerate(_split_sources(
                            offsets[i], channels[i], in_block, block, k).items()):
                        src_at = b.mul(b.add(i64(sb * positions), p), i64(in_block))
                        v = load(b, src, src_at, in_block, f"x{i}.{k}.{step}")
                        pick = dict(lanes)  # output lane -> input lane
                        # the picked lanes into place (a vector of `block` lanes), then merged
                        v = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, block), [
                            pick.get(lane, 0) for lane in range(block)]),
                            name=f"w{i}.{k}.{step}")
                        mask = [block + lane if lane in pick else lane for lane in range(block)]
                        out = b.shuffle_vector(out, v, ir.Constant(ir.VectorType(I32, block),
                                                                   mask), name=f"y{i}.{k}.{step}")
                    store(b, out, dsts[i], b.mul(b.add(i64(k * positions), p), i64(block)),
                          f"y{i}.{k}")
