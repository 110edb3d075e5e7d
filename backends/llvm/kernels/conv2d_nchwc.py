"""Register-tiled direct 2-D convolution on the blocked NCHW[x]c layout.

Layouts (b = block size):
    input   (N, ceil(C_in/ib), H, W, ib)        channel c at [:, c // ib, :, :, c % ib]
    weights (OCB, ICB, KH, KW, ib, ob)          packed once by `pack_weights` (OIHW[i]o)
    output  (N, ceil(C_out/ob), OH, OW, ob)     padding channels are written as exact zeros

Microkernel: an accumulator tile of `ocn` output-channel vectors x (`rows` x `width`) output
pixels stays in vector registers (<= 28 of 32 zmm) while the kernel reduces over input-channel
blocks, kernel rows, kernel columns and, innermost, the `ib` channels of a block. Each innermost
step loads `ocn` weight vectors and broadcasts one input scalar per output pixel against them:
ocn*rows*width FMAs for ocn + rows*width loads. Several output rows per tile only when a whole
row is narrower than the register tile (7x7, 14x14 maps), so small maps still fill it.

Borders cost no branches in the hot loop. Kernel rows: a constant table gives each row tile
the range [kh_lo, kh_hi) of kernel rows that touch the image; tiles of several rows also
select, per kernel row, a pointer to a zero buffer for a row outside the image. Kernel
columns: the output columns are cut into static tiles; a pixel near the left/right edge whose
kernel column falls outside the image reads from the zero buffer through a pointer chosen once
per kernel column (outside the channel loop). A tile kernel is emitted per distinct
(rows, width, border pattern), so interior tiles carry no selects at all.
Epilogue (in registers, before the one store): + bias, + residual, activation. The weight
stream is software-prefetched one channel block ahead (it mostly lives in L2).

Grouped convs (ShuffleNet's g=3 1x1): output block v reduces over the whole input blocks that
hold the groups of its channels (`group_input_blocks`; a block straddling two groups reads both
groups' inputs, its weights zero outside each channel's own group), taken from a per-group table
(start, count) at run time; a register tile only joins output blocks with the same range.

Work split: a task is (image, output-channel group, row tile), numbered channel-major (threads'
shares are channel groups, each thread reads the whole input) or, for a conv whose weights are
small against its activations, spatially (shares are image rows, each thread reads all the
weights and keeps its rows in its caches for the next layer; SPATIAL_WEIGHT_RATIO). Tasks write
disjoint outputs with a fixed summation order, so any split of [0, num_tasks) gives
bit-identical results.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from llvmlite import ir

from graphcnn.ops import preserves_zero
from graphcnn.ops.layout import from_blocked, group_input_blocks, to_blocked

from ..builder import (
    BF16,
    F32P,
    I64,
    apply_activation,
    broadcast,
    check_activation,
    const_table,
    define_kernel,
    dot_bf16_pairs,
    entry_alloca,
    fma,
    for_range,
    gep,
    i64,
    lane_mask,
    linear,
    load,
    load_table,
    prefetch,
    splat,
    store,
    store_bf16,
    udiv_rem,
    vec_type,
    zero_buffer,
)
from .bf16 import pair_words

# Software prefetch distance in the packed weight stream (floats): four channel blocks (4 KB)
# ahead at ib = 16, far enough to hide memory latency, since a network's weights do not stay
# in any cache between inferences.
W_PREFETCH_FLOATS = 1024
# A conv takes the spatial task order (threads split the image, each reads all the weights)
# when its packed weights are at most this many times its activations (input + output, and the
# residual it reads), else the channel order (threads split the output channels, each reads
# the whole input): each thread then streams the smaller of the two from memory.
SPATIAL_WEIGHT_RATIO = 2.0
# tasks a direct conv offers the thread pool at least, where its columns allow: a conv over a
# map of one row (a 1-D conv over time) otherwise runs on as many threads as it has
# output-channel groups (one, with a register tile of all its channels)
MIN_TASKS = 8
KERNEL_ARGS = ("inp", "w", "bias", "res", "out", "task_begin", "task_end")
TILE_ARGS = ("inp", "w", "bias", "res", "out", "ih0", "kh_lo", "kh_hi", "icb_count")


# ----------------------------------------------------------------------------------------------
# numpy layout helpers


# the layout's one definition lives with the op table; kernels and tests use it from here
to_nchwc = to_blocked
from_nchwc = from_blocked


# ----------------------------------------------------------------------------------------------
# Geometry shared with the depthwise kernel


@dataclass(frozen=True)
class ColumnTile:
    """`width` output pixels starting at column `ow0`. `guards` lists (pixel, kw_lo, kw_hi) for
    the pixels whose valid kernel columns are not all of [0, KW) (image borders)."""

    ow0: int
    width: int
    guards: tuple[tuple[int, int, int], ...]

    @property
    def key(self) -> tuple[int, tuple[tuple[int, int, int], ...]]:
        return self.width, self.guards


@dataclass(frozen=True)
class ConvGeometry:
    h: int
    w: int
    kh: int
    kw: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    dilation: tuple[int, int]

    def __post_init__(self) -> None:
        positive = (self.h, self.w, self.kh, self.kw, *self.stride, *self.dilation)
        if (len(self.stride), len(self.dilation), len(self.pads)) != (2, 2, 4):
            raise ValueError(f"conv needs 2 strides, 2 dilations and 4 pads: {self}")
        if min(positive) < 1 or min(self.pads) < 0:
            raise ValueError(f"conv sizes, strides and dilations must be >= 1, pads >= 0: {self}")
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"empty conv output {self.oh}x{self.ow} for {self}")

    @property
    def oh(self) -> int:
        span = (self.kh - 1) * self.dilation[0] + 1
        return (self.h + self.pads[0] + self.pads[2] - span) // self.stride[0] + 1

    @property
    def ow(self) -> int:
        span = (self.kw - 1) * self.dilation[1] + 1
        return (self.w + self.pads[1] + self.pads[3] - span) // self.stride[1] + 1

    def input_row(self, oh: int, kh: int) -> int:
        return oh * self.stride[0] - self.pads[0] + kh * self.dilation[0]

    def input_col(self, ow: int, kw: int) -> int:
        return ow * self.stride[1] - self.pads[1] + kw * self.dilation[1]

    def row_tile_table(self, heights: list[int]) -> list[int]:
        """Flattened (oh0, kh_lo, kh_hi) per row tile: its first output row and the union of
        the kernel rows that land in the image for any of its rows."""
        table, oh0 = [], 0
        for height in heights:
            table += [oh0, *self.kernel_rows(oh0, height)]
            oh0 += height
        return table

    def kernel_rows(self, oh0: int, height: int) -> tuple[int, int]:
        """[kh_lo, kh_hi): the kernel rows that land in the image for any of the output rows
        [oh0, oh0 + height); (0, 0) when none does."""
        valid = [k for k in range(self.kh) for r in range(height)
                 if 0 <= self.input_row(oh0 + r, k) < self.h]
        return (min(valid), max(valid) + 1) if valid else (0, 0)

    def column_tiles(self, widths: list[int]) -> list[ColumnTile]:
        tiles, ow0 = [], 0
        for width in widths:
            guards = []
            for j in range(width):
                valid = [k for k in range(self.kw) if 0 <= self.input_col(ow0 + j, k) < self.w]
                lo, hi = (valid[0], valid[-1] + 1) if valid else (0, 0)
                if (lo, hi) != (0, self.kw):
                    guards.append((j, lo, hi))
            tiles.append(ColumnTile(ow0, width, tuple(guards)))
            ow0 += width
        return tiles


def split_even(total: int, max_width: int) -> list[int]:
    """Cut `total` into the fewest pieces <= max_width, as equal as possible, larger first."""
    count = -(-total // max_width)
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)


def tile_runs(tiles: list[ColumnTile]) -> list[tuple[ColumnTile, int]]:
    """Group consecutive identical tiles (same pattern and width) into (first tile, count), so
    the interior becomes one runtime loop instead of many unrolled calls."""
    runs: list[tuple[ColumnTile, int]] = []
    for tile in tiles:
        if runs and runs[-1][0].key == tile.key:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((tile, 1))
    return runs


@dataclass(frozen=True)
class Tiling:
    """How one image's output is cut: `ocn` channel vectors per group, row tiles of `heights`
    output rows, column tiles of `widths` output columns (a tile has several rows only when
    it spans the whole row)."""

    ocn: int
    heights: tuple[int, ...]
    widths: tuple[int, ...]

    def check(self, n_vectors: int, rows: int, cols: int) -> Tiling:
        """Raise ValueError unless this tiling exactly covers the output (user overrides)."""
        if (n_vectors % self.ocn or sum(self.heights) != rows or sum(self.widths) != cols
                or list(self.heights) != sorted(self.heights, reverse=True)
                or list(self.widths) != sorted(self.widths, reverse=True)
                or min(self.heights + self.widths) < 1):
            raise ValueError(f"{self} does not tile {n_vectors} vectors x {rows} x {cols} "
                             "(ocn must divide, sizes non-increasing, sums must match)")
        return self


def vector_registers(vector_width: int) -> int:
    """Architectural vector registers: 32 zmm with AVX-512, else 16 (ymm/xmm)."""
    return 32 if vector_width >= 16 else 16


def choose_tiling(n_vectors: int, oh: int, ow: int, registers: int = 32,
                  ocns: Sequence[int] | None = None) -> Tiling:
    """The register tile for a conv with `n_vectors` output-channel vectors (`ocn` among
    `ocns` if given, e.g. a grouped conv's). Rule: estimate
    the cycles of one reduction step of each tile as
        max(FMAs / 2 ports, loads / 2 ports, 4-cycle FMA latency) + 1 (loop overhead)
    with ocn*pixels FMAs and ocn weight loads + one broadcast per pixel, subject to
    ocn*pixels accumulators + ocn weights + 2 temporaries <= registers and ocn dividing
    n_vectors; sum over all tiles; take the cheapest (ties: more pixels per tile)."""
    return _choose_tiling(n_vectors, oh, ow, registers, None if ocns is None else tuple(ocns))


@functools.lru_cache(maxsize=1024)
def _choose_tiling(n_vectors: int, oh: int, ow: int, registers: int,
                   ocns: tuple[int, ...] | None) -> Tiling:
    """choose_tiling, memoised: lowering creates each conv's plan several times."""
    best: tuple[float, int, Tiling] | None = None
    for ocn in (d for d in range(1, n_vectors + 1) if n_vectors % d == 0
                and (ocns is None or d in ocns)):
        max_pixels = (registers - 2 - ocn) // ocn
        if max_pixels < 1:
            break
        if ow > max_pixels:
            shapes = [([1] * oh, split_even(ow, max_pixels))]
        else:
            shapes = [(split_even(oh, rows), [ow]) for rows in range(1, max_pixels // ow + 1)
                      if rows <= oh]
        for heights, widths in shapes:
            cycles = sum(max(ocn * h * w / 2, (ocn + h * w) / 2, 4.0) + 1.0
                         for h in heights for w in widths) * (n_vectors // ocn)
            candidate = (cycles, -max(heights) * max(widths),
                         Tiling(ocn, tuple(heights), tuple(widths)))
            if best is None or candidate[:2] < best[:2]:
                best = candidate
    assert best is not None
    return best[2]


# ----------------------------------------------------------------------------------------------
# Emission pieces shared with the depthwise kernel


def emit_epilogue(b: ir.IRBuilder, acc: ir.Value, bias: ir.Value, res: ir.Value | None,
                  activation: str, params: tuple[float, ...], mask_lanes: int | None,
                  name: str) -> ir.Value:
    """act(acc + bias (+ residual)), padding lanes zeroed when `mask_lanes` is given."""
    value = b.fadd(acc, bias, name=f"{name}.b")
    if res is not None:
        value = b.fadd(value, res, name=f"{name}.res")
    value = apply_activation(b, value, activation, params, f"{name}.act")
    if mask_lanes is not None:
        value = lane_mask(b, value, mask_lanes, f"{name}.mask")
    return value


def emit_row_bases(b: ir.IRBuilder, in_k: ir.Value, ih0: ir.Value, kh: ir.Value, height: int,
                   stride_h: int, dilation_h: int, image_h: ir.Value, row_floats: ir.Value,
                   zeros: ir.Value) -> list[ir.Value]:
    """Input pointer of each output row of a tile for kernel row `kh` (`image_h` rows of
    `row_floats` floats). A one-row tile's kh range is exact (no check); in taller tiles a row
    outside the image reads zeros."""
    if height == 1:
        return [in_k]
    bases = []
    for r in range(height):
        ih = linear(b, f"ih{r}", (ih0, 1), (kh, dilation_h), const=r * stride_h)
        inside = b.icmp_unsigned("<", ih, image_h, name=f"row_inside{r}")  # 0 <= ih < H
        real = gep(b, in_k, linear(b, f"row{r}.off", (row_floats, r * stride_h)),
                          f"row{r}")
        bases.append(b.select(inside, real, zeros, name=f"row_sel{r}"))
    return bases


def emit_branches(b: ir.IRBuilder, cases: list[tuple[ir.Value | None, Callable[[], None]]]
                  ) -> None:
    """if (cond0) body0 else if (cond1) body1 ... else body_last (whose cond is None)."""
    cond, body = cases[0]
    if cond is None or len(cases) == 1:
        body()
        return
    with b.if_else(cond) as (then, otherwise):
        with then:
            body()
        with otherwise:
            emit_branches(b, cases[1:])


TileKey = tuple[int, tuple[int, tuple[tuple[int, int, int], ...]], bool]  # height, column, mask


@dataclass(frozen=True)
class TaskLoop:
    """The outer parallel-for shared by the NCHWc conv kernels: task -> (image, group, row
    tile) -> calls of the tile kernels along the row tile. Strides are in floats."""

    geometry: ConvGeometry
    tiling: Tiling
    n: int
    groups: int
    in_block: int
    vector_width: int
    in_image_stride: int   # input floats per image
    in_group_stride: int   # input floats per group (depthwise: its channel blocks)
    w_group_stride: int    # packed weight floats per group
    out_blocks: int        # output channel blocks per image
    mask_last_group: bool
    # grouped conv: per group, the input-channel blocks (start, count) it reduces over (the
    # input is offset by `start` blocks instead of by in_group_stride); () otherwise
    group_blocks: tuple[tuple[int, int], ...] = ()
    # the plan's sizes a shared tile kernel takes at run time (Conv2dNCHWcPlan.tile_sizes):
    # every tile call gets a pointer to a constant table of them; () for tiles without one
    tile_sizes: tuple[int, ...] = ()
    # task order: rows outermost (threads' shares are image regions) rather than channel groups
    spatial: bool = False
    # the output is bf16: offsets into it count bf16 elements (the tile kernels get a pointer
    # cast back to float*, and store through a bf16 one)
    out_bf16: bool = False
    # each row tile's column tiles cut into this many tasks (contiguous runs of tiles): a map
    # of one or a few rows (a 1-D conv over time) has too few row tiles to share out
    col_chunks: int = 1

    def chunk_tiles(self) -> list[list[ColumnTile]]:
        """The column tiles of each chunk, in order."""
        tiles = self.column_tiles()
        bounds = [round(i * len(tiles) / self.col_chunks) for i in range(self.col_chunks + 1)]
        return [tiles[bounds[i]:bounds[i + 1]] for i in range(self.col_chunks)]

    @property
    def num_tasks(self) -> int:
        return self.n * self.groups * len(self.tiling.heights) * self.col_chunks

    def tile_keys(self) -> list[TileKey]:
        columns = dict.fromkeys(t.key for t in self.column_tiles())
        masks = [False, True] if self.mask_last_group else [False]
        return [(h, c, m) for h in dict.fromkeys(self.tiling.heights) for c in columns
                for m in masks]

    def column_tiles(self) -> list[ColumnTile]:
        return self.geometry.column_tiles(list(self.tiling.widths))

    def emit(self, module: ir.Module, fn: ir.Function, kernels: dict[TileKey, ir.Function]
             ) -> None:
        g, t, ib, vw = self.geometry, self.tiling, self.in_block, self.vector_width
        inp, w, bias, res, out, begin, end = fn.args
        table = const_table(module, f"{fn.name}.row_tiles", g.row_tile_table(list(t.heights)))
        ocn = t.ocn
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        with self._tasks(b, begin, end) as (n, group, row_chunk):
            row_tile, chunk = (udiv_rem(b, row_chunk, self.col_chunks, "rc")
                               if self.col_chunks > 1 else (row_chunk, None))
            oh0, kh_lo, kh_hi = (load_table(b, table, linear(b, f"{field}.idx", (row_tile, 3),
                                                             const=i), field)
                                 for i, field in enumerate(("oh0", "kh_lo", "kh_hi")))
            ih0 = linear(b, "ih0", (oh0, g.stride[0]), const=-g.pads[0])
            icb_count = i64(0)  # unused by kernels whose block count is static
            if self.group_blocks:
                blocks = const_table(module, f"{fn.name}.group_blocks",
                                     [v for start, count in self.group_blocks
                                      for v in (start * g.h * g.w * ib, count)])
                group_in = load_table(b, blocks, linear(b, "gb.idx", (group, 2)), "group_in")
                icb_count = load_table(b, blocks, linear(b, "gc.idx", (group, 2), const=1),
                                       "icb_count")
            else:
                group_in = linear(b, "group_in", (group, self.in_group_stride))
            in_off = linear(b, "in_off", (n, self.in_image_stride), (group_in, 1),
                            (ih0, g.w * ib))
            in_rows = gep(b, inp, in_off, "in_rows")
            w_group = gep(b, w, group, "w_group", scale=self.w_group_stride)
            bias_group = gep(b, bias, group, "bias_group", scale=ocn * vw)
            # ((n * out_blocks + group * ocn) * OH + oh0) * OW * vw
            out_off = linear(b, "out_off", (n, self.out_blocks * g.oh * g.ow * vw),
                             (group, ocn * g.oh * g.ow * vw), (oh0, g.ow * vw))
            out_rows = gep(b, b.bitcast(out, BF16.as_pointer(), name="out.bf16")
                           if self.out_bf16 else out, out_off, "out_rows")
            res_rows = gep(b, res, out_off, "res_rows")
            sizes = ([b.gep(const_table(module, f"{fn.name}.sizes", self.tile_sizes),
                            [i64(0), i64(0)], inbounds=True, name="sizes")]
                     if self.tile_sizes else [])

            def emit_tiles(height: int, mask: bool) -> None:
                chunks = self.chunk_tiles()
                if chunk is None:
                    emit_columns(height, mask, chunks[0])
                    return
                emit_branches(b, [(b.icmp_unsigned("==", chunk, i64(i), name=f"chunk{i}"),
                                   lambda tiles=tiles: emit_columns(height, mask, tiles))
                                  for i, tiles in enumerate(chunks[:-1])]
                              + [(None, lambda: emit_columns(height, mask, chunks[-1]))])

            def emit_columns(height: int, mask: bool, tiles: list[ColumnTile]) -> None:
                for tile, count in tile_runs(tiles):
                    kernel = kernels[(height, tile.key, mask)]
                    with for_range(b, 0, count, name=f"col{tile.ow0}") as k:
                        ow0 = linear(b, "ow0", (k, tile.width), const=tile.ow0)
                        in_col = linear(b, "in_col", (ow0, g.stride[1] * ib),
                                        const=-g.pads[1] * ib)
                        out_col = linear(b, "out_col", (ow0, vw))
                        out_tile = gep(b, out_rows, out_col, "out_tile")
                        if self.out_bf16:
                            out_tile = b.bitcast(out_tile, F32P, name="out_tile.f")
                        b.call(kernel, [gep(b, in_rows, in_col, "in_tile"), w_group,
                                        bias_group, gep(b, res_rows, out_col, "res_tile"),
                                        out_tile, ih0, kh_lo, kh_hi, icb_count, *sizes])

            self._emit_dispatch(b, row_tile, group, emit_tiles)
        b.ret_void()

    @contextmanager
    def _tasks(self, b: ir.IRBuilder, begin: ir.Value, end: ir.Value
               ) -> Iterator[tuple[ir.Value, ir.Value, ir.Value]]:
        """Run the body once per task of [begin, end) as (image, group, row tile).
        Channel order: task = (image * groups + group) * row_tiles + row tile. Spatial order:
        task = (image * row_tiles + row tile) * groups + group, and a chunk's tasks run
        group by group so that each group's weights serve all of the chunk's rows."""
        rows = len(self.tiling.heights) * self.col_chunks  # (row tile, column chunk) pairs
        if not self.spatial:
            with for_range(b, begin, end, name="task") as task:
                rest, row_tile = udiv_rem(b, task, rows, "task_rt")
                n, group = udiv_rem(b, rest, self.groups, "task_n")
                yield n, group, row_tile
            return
        first = b.udiv(begin, i64(self.groups), name="pix.first")
        last = b.add(b.udiv(b.sub(end, i64(1), name="end.m1"), i64(self.groups)), i64(1),
                     name="pix.last")
        # pix = image * row_tiles + row tile
        with (for_range(b, 0, self.groups, name="group") as group,
              for_range(b, first, last, name="pix") as pix):
            task = linear(b, "task", (pix, self.groups), (group, 1))
            mine = b.and_(b.icmp_unsigned(">=", task, begin, name="from_begin"),
                          b.icmp_unsigned("<", task, end, name="before_end"), name="mine")
            with b.if_then(mine):
                n, row_tile = udiv_rem(b, pix, rows, "pix")
                yield n, group, row_tile

    def _emit_dispatch(self, b: ir.IRBuilder, row_tile: ir.Value, group: ir.Value,
                       emit_tiles: Callable[[int, bool], None]) -> None:
        """Branch to the tile kernels of this row tile's height, masked for the last group.
        Heights are non-increasing (`Tiling.check`), so each height is one compare."""
        heights = self.tiling.heights
        is_last = (b.icmp_unsigned("==", group, i64(self.groups - 1), name="is_last")
                   if self.mask_last_group else None)
        cases: list[tuple[ir.Value | None, Callable[[], None]]] = []
        end = 0
        for height in dict.fromkeys(heights):
            end += heights.count(height)
            is_height = b.icmp_unsigned("<", row_tile, i64(end), name=f"is_h{height}")
            if is_last is not None:
                cases.append((b.and_(is_height, is_last, name=f"h{height}_masked"),
                              lambda h=height: emit_tiles(h, True)))
            cases.append((is_height, lambda h=height: emit_tiles(h, False)))
        cases[-1] = (None, cases[-1][1])
        emit_branches(b, cases)


# ----------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class Conv2dNCHWcPlan:
    n: int
    c_in: int
    c_out: int
    geometry: ConvGeometry
    vector_width: int        # lanes per vector = out_block
    in_block: int
    out_block: int
    activation: str
    activation_params: tuple[float, ...]
    residual: bool
    tiling: Tiling
    groups: int = 1
    # bf16: the input is a bf16 tensor in the same blocked layout, read as 32-bit words that
    # each hold two neighbouring channels; c_in and in_block count those words (pairs), so
    # every address below is the fp32 kernel's, and the weights are bf16 pairs packed alike
    # (pack_weights); each reduction step is one vdpbf16ps over two channels
    bf16: bool = False
    logical_c_in: int = 0    # bf16: the conv's input channels (c_in counts pairs)
    out_bf16: bool = False   # the epilogue stores bf16 (passes/precision.py, rule 2)

    @classmethod
    def create(cls, *, n: int, c_in: int, h: int, w: int, c_out: int, kh: int, kw: int,
               stride: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0),
               dilation: tuple[int, int] = (1, 1), vector_width: int = 16,
               in_block: int | None = None, out_block: int | None = None,
               activation: str = "none", activation_params: tuple[float, ...] = (),
               residual: bool = False, tiling: Tiling | None = None, groups: int = 1,
               out_bf16: bool = False) -> Conv2dNCHWcPlan:
        """`tiling` overrides `choose_tiling` (tuning experiments, tests). `groups` > 1: each
        output block reduces over the input blocks of its channels' groups
        (graphcnn.ops.layout.group_input_blocks)."""
        params = check_activation(activation, activation_params)
        out_block = out_block or vector_width
        in_block = in_block or vector_width
        if out_block > vector_width or vector_width % out_block:
            raise ValueError(f"out_block {out_block} must divide vector_width {vector_width}")
        if min(n, c_in, c_out, in_block, out_block) < 1:
            raise ValueError(f"conv needs n, channels and blocks >= 1: n={n} c_in={c_in} "
                             f"c_out={c_out} in_block={in_block} out_block={out_block}")
        if groups < 1 or c_in % groups or c_out % groups:
            raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
        geometry = ConvGeometry(h, w, kh, kw, tuple(stride), tuple(pads), tuple(dilation))
        n_vectors = -(-c_out // out_block)
        ranges = group_input_blocks(c_in, c_out, groups, in_block, out_block)
        # the vectors of one register tile share the input they reduce over
        ocns = [d for d in range(1, n_vectors + 1) if n_vectors % d == 0
                and all(len(set(ranges[i:i + d])) == 1 for i in range(0, n_vectors, d))]
        if tiling is None:
            tiling = choose_tiling(n_vectors, geometry.oh, geometry.ow,
                                   vector_registers(vector_width), ocns)
        tiling.check(n_vectors, geometry.oh, geometry.ow)
        if tiling.ocn not in ocns:
            raise ValueError(f"{tiling} puts output blocks of different groups in one tile")
        if out_bf16 and out_block != 16:
            raise ValueError(f"a bf16 output needs 16-channel blocks, got {out_block}")
        return cls(n, c_in, c_out, geometry, out_block, in_block, out_block, activation, params,
                   residual, tiling, groups, out_bf16=out_bf16)

    @classmethod
    def create_bf16(cls, *, c_in: int, in_block: int | None = None, vector_width: int = 16,
                    groups: int = 1, **conv: object) -> Conv2dNCHWcPlan:
        """The plan of `create` for a bf16 input (AVX512-BF16): the same tiles over pairs of
        input channels. Needs 16-lane vectors (vdpbf16ps is 512-bit), an even input block and
        groups == 1 (a group boundary would split a pair)."""
        in_block = in_block or vector_width
        if vector_width != 16 or in_block % 2 or groups != 1:
            raise ValueError(f"the bf16 conv needs 16 lanes, an even input block and groups=1, "
                             f"got vector_width={vector_width} in_block={in_block} "
                             f"groups={groups}")
        words = cls.create(c_in=-(-c_in // 2), in_block=in_block // 2,
                           vector_width=vector_width, **conv)
        return dataclasses.replace(words, bf16=True, logical_c_in=c_in)

    # Derived sizes ------------------------------------------------------------------------

    @property
    def oh(self) -> int:
        return self.geometry.oh

    @property
    def ow(self) -> int:
        return self.geometry.ow

    @property
    def icb(self) -> int:
        return -(-self.c_in // self.in_block)

    @property
    def ocb(self) -> int:
        return -(-self.c_out // self.out_block)

    @property
    def num_tasks(self) -> int:
        return self.task_loop.num_tasks

    @property
    def flops(self) -> int:
        g = self.geometry
        c_in = self.logical_c_in if self.bf16 else self.c_in
        return 2 * self.n * self.c_out * self.oh * self.ow * c_in * g.kh * g.kw // self.groups

    @cached_property
    def input_ranges(self) -> list[tuple[int, int]]:
        """Per output block, the input blocks (start, count) it reduces over."""
        return group_input_blocks(self.c_in, self.c_out, self.groups, self.in_block,
                                  self.out_block)

    @property
    def reduce_blocks(self) -> int:
        """Input blocks packed per output block: all of them, or a grouped conv's widest range."""
        return max(count for _, count in self.input_ranges) if self.groups > 1 else self.icb

    @property
    def mask_last_group(self) -> bool:
        """Padding output lanes are 0 + 0 before the activation; mask them only if act(0) != 0."""
        return (self.c_out % self.out_block != 0
                and not preserves_zero(self.activation, self.activation_params))

    @property
    def _w_vec_stride(self) -> int:
        """Floats between the packed weights of consecutive output-channel blocks."""
        g = self.geometry
        return self.reduce_blocks * g.kh * g.kw * self.in_block * self.out_block

    @cached_property
    def task_loop(self) -> TaskLoop:
        g = self.geometry
        return TaskLoop(g, self.tiling, self.n, self.ocb // self.tiling.ocn, self.in_block,
                        self.vector_width, in_image_stride=self.icb * g.h * g.w * self.in_block,
                        in_group_stride=0, w_group_stride=self.tiling.ocn * self._w_vec_stride,
                        out_blocks=self.ocb, mask_last_group=self.mask_last_group,
                        group_blocks=tuple(self.input_ranges[::self.tiling.ocn])
                        if self.groups > 1 else (), tile_sizes=self.tile_sizes,
                        spatial=self.spatial, out_bf16=self.out_bf16,
                        col_chunks=self.col_chunks)

    @property
    def col_chunks(self) -> int:
        """Column chunks per row tile (TaskLoop.col_chunks): enough for MIN_TASKS tasks when
        images x channel groups x row tiles fall short, at most one per column tile."""
        tasks = self.n * (self.ocb // self.tiling.ocn) * len(self.tiling.heights)
        columns = len(self.tiling.widths)
        return max(1, min(columns, -(-MIN_TASKS // tasks)))

    @property
    def spatial(self) -> bool:
        """Spatial task order (TaskLoop.spatial), by SPATIAL_WEIGHT_RATIO; only with several
        channel groups and row tiles to order."""
        g, t = self.geometry, self.tiling
        weights = 4 * self.ocb * self._w_vec_stride
        outputs = (2 if self.residual else 1) * self.ocb * self.out_block * g.oh * g.ow
        acts = 4 * self.n * (self.icb * self.in_block * g.h * g.w + outputs)
        return (self.ocb > t.ocn and len(t.heights) > 1
                and weights <= SPATIAL_WEIGHT_RATIO * acts)

    @property
    def tile_sizes(self) -> tuple[int, ...]:
        """The sizes the shared tile kernels read from this plan's table, one per name in
        TILE_SIZES (strides in floats)."""
        g, ib, vw = self.geometry, self.in_block, self.vector_width
        return (self.c_in // ib, g.h * g.w * ib, g.w * ib, g.h, self._w_vec_stride,
                self.oh * self.ow * vw, self.ow * vw)

    def tile_spec(self, key: TileKey) -> TileSpec:
        height, (width, guards), mask = key
        g = self.geometry
        last_lanes = self.c_out - (self.ocb - 1) * self.out_block
        return TileSpec(self.tiling.ocn, height, width, guards, last_lanes if mask else None,
                        g.kh, g.kw, g.stride, g.dilation, self.in_block, self.vector_width,
                        0 if self.groups > 1 else self.c_in % self.in_block, self.groups > 1,
                        self.activation, self.activation_params, self.residual, self.bf16,
                        self.out_bf16)

    # Weights --------------------------------------------------------------------------------

    def pack_weights(self, weight: np.ndarray, bias: np.ndarray | None, copy: bool = True
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(C_out, C_in, KH, KW) -> (OCB, ICB, KH, KW, ib, ob); bias -> (OCB*ob,), zero-padded.
        `copy=False` may give the packed weights as a strided view of `weight`: the backend's
        weights arena copies it once, in place (no second full-size copy of big models)."""
        g, ib, ob = self.geometry, self.in_block, self.out_block
        c_in = self.logical_c_in if self.bf16 else self.c_in
        expected = (self.c_out, c_in // self.groups, g.kh, g.kw)
        if weight.shape != expected:
            raise ValueError(f"conv weight shape {weight.shape}, expected {expected}")
        bias_packed = np.zeros(self.ocb * ob, dtype=np.float32)
        if bias is not None:
            bias_packed[:self.c_out] = bias
        if self.bf16:
            return self._pack_bf16(weight), bias_packed
        if self.groups > 1:
            return self._pack_grouped(weight), bias_packed
        padded = np.asarray(weight, dtype=np.float32)
        if (self.ocb * ob, self.icb * ib) != (self.c_out, self.c_in):  # zero channels to fill
            padded = np.zeros((self.ocb * ob, self.icb * ib, g.kh, g.kw), dtype=np.float32)
            padded[:self.c_out, :self.c_in] = weight
        packed = padded.reshape(self.ocb, ob, self.icb, ib, g.kh, g.kw).transpose(0, 2, 4, 5, 3, 1)
        return (np.ascontiguousarray(packed) if copy else packed), bias_packed

    def _pack_bf16(self, weight: np.ndarray) -> np.ndarray:
        """(C_out, C_in, KH, KW) -> (OCB, ICB, KH, KW, ib, ob) 32-bit words, word [p, o] the
        bf16 pair (w[o, 2p], w[o, 2p + 1]) (rounded to nearest even), as float32 bit patterns
        for the weights arena."""
        g, ib, ob = self.geometry, self.in_block, self.out_block
        padded = np.zeros((self.ocb * ob, self.icb * ib * 2, g.kh, g.kw), dtype=np.float32)
        padded[:self.c_out, :self.logical_c_in] = weight
        pairs = padded.reshape(self.ocb, ob, self.icb, ib, 2, g.kh, g.kw)
        return pair_words(pairs.transpose(0, 2, 5, 6, 3, 1, 4))

    def _pack_grouped(self, weight: np.ndarray) -> np.ndarray:
        """(C_out, C_in/groups, KH, KW) -> (OCB, reduce_blocks, KH, KW, ib, ob): output block v
        sees input blocks from its range's start; weights outside a channel's group stay 0."""
        g, ib, ob = self.geometry, self.in_block, self.out_block
        cin_g, cout_g = self.c_in // self.groups, self.c_out // self.groups
        packed = np.zeros((self.ocb, self.reduce_blocks, g.kh, g.kw, ib, ob), np.float32)
        for co in range(self.c_out):
            v, lane = divmod(co, ob)
            start = self.input_ranges[v][0]
            rel = np.arange(co // cout_g * cin_g, (co // cout_g + 1) * cin_g) - start * ib
            packed[v, rel // ib, :, :, rel % ib, lane] = weight[co]
        return packed

    # Emission -------------------------------------------------------------------------------

    def emit(self, module: ir.Module, name: str) -> ir.Function:
        """Emit `void name(in, w_packed, bias_packed, residual_or_null, out, task_begin,
        task_end)`; `residual_or_null` is read only when the plan has `residual`. Its tile
        kernels are shared with every plan of the module that needs the same (TileSpec)."""
        fn = define_kernel(module, name, 5, 2, KERNEL_ARGS, may_alias=("res", "out"))
        kernels = {key: emit_tile_kernel(module, self.tile_spec(key))
                   for key in self.task_loop.tile_keys()}
        self.task_loop.emit(module, fn, kernels)
        return fn


# ----------------------------------------------------------------------------------------------
# The tile kernel


# the plan's sizes a tile kernel reads at run time from the table its last argument points
# at (Conv2dNCHWcPlan.tile_sizes)
TILE_SIZES = ("full_blocks", "in_block_stride", "in_row_stride", "in_h", "w_vec_stride",
              "out_block_stride", "out_row_stride")


@dataclass(frozen=True)
class TileSpec:
    """Every compile-time constant of one register-tile kernel; what differs between plans
    that can share it (image and channel sizes) it reads at run time (TILE_SIZES). ResNet-50's
    34 tile kernels are 19 specs: its seven 1x1 relu convs of different sizes share one."""

    ocn: int
    height: int
    width: int
    guards: tuple[tuple[int, int, int], ...]
    mask_lanes: int | None          # the last group's real output lanes, when masked
    kh: int
    kw: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    in_block: int
    vector_width: int
    tail: int                       # input channels past the whole blocks (0: none)
    grouped: bool                   # the whole blocks' count comes from the group table
    activation: str
    activation_params: tuple[float, ...]
    residual: bool
    bf16: bool = False              # each step one vdpbf16ps over a pair of channels
    out_bf16: bool = False          # the epilogue stores bf16 (rounded to nearest even)

    @property
    def name(self) -> str:
        """A function name that only this spec gives (a digest of its fields)."""
        digest = hashlib.blake2s(repr(self).encode(), digest_size=8).hexdigest()
        return f"nchwc.tile.{self.ocn}x{self.height}x{self.width}.{digest}"


def emit_tile_kernel(module: ir.Module, spec: TileSpec) -> ir.Function:
    """The microkernel of `spec` in `module`, emitted on first use: accumulate an
    (ocn x height x width) tile, then the epilogue.

    Loop nest: input-channel block -> kernel row -> kernel column -> channel in block, with
    the (pixel, channel vector) tile unrolled in the innermost body. Kernel columns are a
    runtime loop on purpose: unrolled, LLVM merges the equal broadcasts of neighbouring
    columns and keeps them live, which spills the accumulators. Addresses that depend on the
    run-time sizes are formed outside the channel loop (the kernel modules' "lean" pipeline
    has no LICM to hoist them)."""
    existing = module.globals.get(spec.name)
    if existing is not None:
        return existing
    ib, vw, ocn, height, width = (spec.in_block, spec.vector_width, spec.ocn, spec.height,
                                  spec.width)
    fn = define_kernel(module, spec.name, 5, 4, TILE_ARGS + ("sizes",), internal=True,
                       may_alias=("res", "out"), trailing=[I64.as_pointer()])
    inp, w, bias, res, out, ih0, kh_lo, kh_hi, icb_count, sizes = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    (full_blocks, in_block_stride, in_row_stride, in_h, w_vec_stride, out_block_stride,
     out_row_stride) = (b.load(b.gep(sizes, [i64(k)], inbounds=True, name=f"{field}.p"),
                               name=field) for k, field in enumerate(TILE_SIZES))
    span = (spec.kw - 1) * spec.dilation[1] + (width - 1) * spec.stride[1] + 1
    zeros = zero_buffer(module, span * ib)
    step_fn = dot_bf16_pairs if spec.bf16 else fma
    pixels = [(r, j) for r in range(height) for j in range(width)]
    accs = {}
    for o in range(ocn):
        for r, j in pixels:
            accs[o, r, j] = entry_alloca(b, vec_type(vw), f"acc{o}_{r}_{j}")
            b.store(splat(0.0, vw), accs[o, r, j])
    # where output-channel vector o's weights start, from vector 0's
    w_vec_offsets = {o: linear(b, f"wvo{o}", (w_vec_stride, o)) for o in range(1, ocn)}

    def step(sources: dict[tuple[int, int], tuple[ir.Value, int]], w_kw: list[ir.Value],
             ic: ir.Value) -> None:
        ic_w = b.mul(ic, i64(vw), name="ic_w")
        w_c = [b.gep(w_kw[o], [ic_w], name=f"w_c{o}") for o in range(ocn)]
        wv = [load(b, w_c[o], 0, vw, f"w{o}") for o in range(ocn)]
        for o in range(ocn):
            prefetch(b, w_c[o], W_PREFETCH_FLOATS, f"w{o}.pf")
        for r, j in pixels:
            base, offset = sources[r, j]
            x = broadcast(b, gep(b, base, ic, f"in{r}_{j}"), offset, vw, f"x{r}_{j}")
            for o in range(ocn):
                acc = accs[o, r, j]
                b.store(step_fn(b, wv[o], x, b.load(acc, name=f"{acc.name}.v"),
                                f"fma{o}_{r}_{j}"), acc)

    def reduce_block(icb: ir.Value, channels: int, tag: str) -> None:
        in_b = b.gep(inp, [b.mul(icb, in_block_stride, name=f"inb_{tag}.off")],
                     name=f"in_{tag}")
        w_b = gep(b, w, icb, f"w_{tag}", scale=spec.kh * spec.kw * ib * vw)
        with for_range(b, kh_lo, kh_hi, name=f"kh_{tag}") as kh:
            kh_rows = b.mul(kh, i64(spec.dilation[0]), name=f"khr_{tag}")
            in_k = b.gep(in_b, [b.mul(kh_rows, in_row_stride, name=f"ink_{tag}.off")],
                         name=f"ink_{tag}")
            rows = emit_row_bases(b, in_k, ih0, kh, height, spec.stride[0], spec.dilation[0],
                                  in_h, in_row_stride, zeros)
            w_k = gep(b, w_b, kh, f"wk_{tag}", scale=spec.kw * ib * vw)
            with for_range(b, 0, spec.kw, name=f"kw_{tag}") as kw:
                kw_off = linear(b, "kw_off", (kw, spec.dilation[1] * ib))
                row_kw = [gep(b, row, kw_off, f"rowkw{r}") for r, row in enumerate(rows)]
                w_kw0 = gep(b, w_k, kw, f"wkw_{tag}", scale=ib * vw)
                w_kw = [b.gep(w_kw0, [w_vec_offsets[o]], name=f"wkw{o}_{tag}") if o else w_kw0
                        for o in range(ocn)]
                # Pixel (r, j) reads base + ic + offset; border pixels get their own base.
                sources = {(r, j): (row_kw[r], j * spec.stride[1] * ib) for r, j in pixels}
                for j, lo, hi in spec.guards:
                    inside = b.and_(b.icmp_signed(">=", kw, i64(lo), name=f"col_lo{j}"),
                                    b.icmp_signed("<", kw, i64(hi), name=f"col_hi{j}"),
                                    name=f"col_inside{j}")
                    for r in range(height):
                        real = gep(b, row_kw[r], j * spec.stride[1] * ib, f"col{r}_{j}")
                        sel = b.select(inside, real, zeros, name=f"col_sel{r}_{j}")
                        sources[r, j] = (sel, 0)
                with for_range(b, 0, channels, name=f"ic_{tag}") as ic:
                    step(sources, w_kw, ic)

    # the task's whole blocks: the plan's, or its group's range (padding lanes are zeros)
    blocks = icb_count if spec.grouped else full_blocks
    with for_range(b, 0, blocks, name="icb") as icb:
        reduce_block(icb, ib, "full")
    if spec.tail:
        reduce_block(blocks, spec.tail, "tail")

    for o in range(ocn):
        bias_v = load(b, bias, o * vw, vw, f"bias{o}")
        mask_lanes = spec.mask_lanes if o == ocn - 1 else None
        for r in range(height):
            out_r = linear(b, f"orr{o}_{r}", (out_block_stride, o), (out_row_stride, r))
            for j in range(width):
                offset = linear(b, f"oof{o}_{r}_{j}", (out_r, 1), const=j * vw)
                res_v = (load(b, res, offset, vw, f"res{o}_{r}_{j}") if spec.residual
                         else None)
                value = emit_epilogue(b, b.load(accs[o, r, j], name=f"sum{o}_{r}_{j}"),
                                      bias_v, res_v, spec.activation, spec.activation_params,
                                      mask_lanes, f"y{o}_{r}_{j}")
                (store_bf16 if spec.out_bf16 else store)(b, value, out, offset,
                                                         f"out{o}_{r}_{j}")
    b.ret_void()
    return fn
