"""Direct 2-D convolution vectorised along output rows, for convs with few output channels.

The NCHWc kernel (conv2d_nchwc.py) puts output channels in the vector lanes. A conv with at
most 8 output channels (LeNet's first layer: 1 -> 6 channels, 5x5) leaves most lanes of such a
vector empty: its 6 channels in an 8-lane block use 6 of a zmm register's 16 lanes. This kernel
puts `V` consecutive output *pixels* of one channel in the lanes instead (28 columns: two
vectors, 28 of 32 lanes busy), which needs the input planar: one channel's row is contiguous.

Layouts:
    input   (N, C_in, H, W, 1)          planar NCHW (blocked with block 1: the same bytes)
    weights (C_in, KH, KW, C_out)       packed once by `pack_weights`
    output  (N, 1, OH, OW, ob)          one NCHWc block, c_out <= ob <= 8; padding channels 0
                                        (OH/2, OW/2 with the fused pool)

Microkernel: a register tile of C_out channels x `rows` output rows x `chunks` pixel vectors
accumulates in vector registers while the kernel reduces over input channels (a loop) and the
KH x KW taps (unrolled). Each tap loads one input vector per (row, chunk) and broadcasts
C_out weights, C_out FMAs per input vector. A row's pixel vectors start at 0, V, 2V, ... and
the last one ends at the row's end (it overlaps its neighbour when V does not divide OW and
recomputes a few pixels, bit-identically). Borders cost no branches: an input row outside the
image is read from a zero buffer (a pointer select per row and tap row), and columns outside
it are masked off the load (constant masks: the vector's columns are static).
Epilogue: + bias per channel vector, then an in-register transpose (log2(ob) stages of
two-vector shuffles) turns ob channel vectors of V pixels into V*ob/V vectors of the NCHWc
block's [pixel][channel] order, then activation, padding channels zeroed, stores.

Fused max pool (`pool` 2: a 2x2 stride-2 max pool after the activation, floor mode;
passes/fuse_conv_pool.py fuses conv -> max_pool into it): a register tile holds the pool's two
output rows; the epilogue takes bias and activation of each, their lane-wise max, then the max of lane pairs (2j, 2j+1)
by two shuffles, and transposes only the V/2 pooled pixels. The full-size conv output is never
written, which saves a store and a reload of the largest tensor.

Work split: task = (image, strip of consecutive row tiles); every output value is one task's
fixed-order sum and overlapping tiles recompute identical values, so any split of the tasks
gives the same bits. A residual input is not taken (the overlap would read an output it has
already written when the planner puts the residual on the output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from graphcnn.ops import preserves_zero

from ..builder import (
    I32,
    apply_activation,
    broadcast,
    check_activation,
    const_table,
    define_kernel,
    entry_alloca,
    fma,
    fmax,
    for_range,
    gep,
    i64,
    linear,
    load_masked,
    load_table,
    splat,
    store,
    udiv_rem,
    vec_type,
    zero_buffer,
)
from .conv2d_nchwc import KERNEL_ARGS, ConvGeometry, vector_registers

MAX_OUT_CHANNELS = 8   # above, the NCHWc kernel's channel vectors are at least half full
MAX_CHUNKS = 8         # pixel vectors per output row (each column tile is unrolled)
MIN_TASKS = 4          # tasks worth cutting an image into: 2 per thread on 2 cores


def row_chunks(ow: int, width: int) -> list[int]:
    """First column of each pixel vector along an output row: 0, V, 2V, ..., and the last
    one ending at the row's end (overlapping the one before when V does not divide OW)."""
    starts = list(range(0, ow - width + 1, width))
    if starts[-1] + width < ow:
        starts.append(ow - width)
    return starts


def _computed_width(ow: int, pool: int) -> int:
    """Conv output columns the kernel computes: all of them, or with a fused 2x2 pool the
    even count the pool reads (floor mode drops an odd last column)."""
    return ow - ow % 2 if pool else ow


def _interleave_masks(g: int, width: int) -> tuple[list[int], list[int]]:
    """Lane masks for a two-vector shuffle interleaving groups of g lanes of x and y: the low
    half of each input into `lo`, the high half into `hi` (y's lanes are numbered width+)."""
    half = width // 2
    lo, hi = [], []
    for start, out in ((0, lo), (half, hi)):
        for i in range(half // g):
            out += [start + i * g + j for j in range(g)]
            out += [width + start + i * g + j for j in range(g)]
    return lo, hi


def blocked_transpose(b: ir.IRBuilder, vectors: list[ir.Value], width: int, name: str
                      ) -> list[ir.Value]:
    """`vectors[c]` = V pixels of channel c (ob = len(vectors), a power of two <= V) -> the
    V*ob floats of those pixels in [pixel][channel] order, as ob vectors of V lanes.

    Stage g = 1, 2, 4, ... < ob interleaves groups of g lanes of vector pairs (2k, 2k+1):
    after log2(ob) stages each vector holds V/ob consecutive pixels with all ob channels in
    order. The network is also run on (channel, pixel) labels, which gives the final order
    of the vectors and checks the result at compile time."""
    ob = len(vectors)
    labels = [[(c, p) for p in range(width)] for c in range(ob)]
    values = list(vectors)
    g = 1
    while g < ob:
        lo_mask, hi_mask = _interleave_masks(g, width)
        lo_vals, hi_vals, lo_labels, hi_labels = [], [], [], []
        for x, y in ((2 * k, 2 * k + 1) for k in range(ob // 2)):
            both = labels[x] + labels[y]
            for mask, vals, labs, part in ((lo_mask, lo_vals, lo_labels, "lo"),
                                           (hi_mask, hi_vals, hi_labels, "hi")):
                vals.append(b.shuffle_vector(values[x], values[y],
                                             ir.Constant(ir.VectorType(I32, width), mask),
                                             name=f"{name}.g{g}.{part}{x}"))
                labs.append([both[i] for i in mask])
        values, labels = lo_vals + hi_vals, lo_labels + hi_labels
        g *= 2
    # each result now holds width // ob consecutive pixels, all channels in order: sort by pixel
    order = sorted(range(ob), key=lambda k: labels[k][0][1])
    for rank, k in enumerate(order):
        want = [(i % ob, rank * (width // ob) + i // ob) for i in range(width)]
        assert labels[k] == want, "blocked_transpose: shuffle network lost a lane"
    return [values[k] for k in order]


@dataclass(frozen=True)
class RowConv2dPlan:
    """Same kernel ABI as Conv2dNCHWcPlan: `void name(in, w, bias, res (unused), out,
    task_begin, task_end)`."""

    n: int
    c_in: int
    c_out: int
    geometry: ConvGeometry
    vector_width: int        # pixels per vector (the host's lanes)
    out_block: int
    activation: str
    activation_params: tuple[float, ...]
    rows: int                # output rows per register tile
    chunks: int              # pixel vectors per register tile
    strips: int              # tasks per image
    pool: int = 0            # 2: a fused 2x2 stride-2 max pool (the output is pooled); 0: none

    in_block = 1
    residual = False

    @classmethod
    def create(cls, *, n: int, c_in: int, h: int, w: int, c_out: int, kh: int, kw: int,
               stride: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0),
               dilation: tuple[int, int] = (1, 1), vector_width: int = 16, out_block: int = 8,
               activation: str = "none", activation_params: tuple[float, ...] = (),
               residual: bool = False, pool: int = 0, **unused: object) -> RowConv2dPlan:
        """ValueError for a conv this kernel does not take (the caller falls back). `pool` 2
        fuses a 2x2 stride-2 max pool (floor mode) after the activation."""
        params = check_activation(activation, activation_params)
        geometry = ConvGeometry(h, w, kh, kw, tuple(stride), tuple(pads), tuple(dilation))
        if tuple(stride) != (1, 1) or residual or unused.get("groups", 1) != 1:
            raise ValueError("row conv: stride 1, ungrouped, no residual only")
        if not c_out <= out_block <= min(MAX_OUT_CHANNELS, vector_width) \
                or out_block & (out_block - 1) or vector_width & (vector_width - 1):
            raise ValueError(f"row conv: c_out {c_out} <= out_block {out_block} <= "
                             f"{MAX_OUT_CHANNELS}, powers of two")
        if unused.get("in_block", 1) != 1:
            raise ValueError("row conv reads a planar input (in_block 1)")
        if pool not in (0, 2) or (pool and geometry.oh < 2):
            raise ValueError(f"row conv: fused max pool 2x2 only (pool {pool}, "
                             f"{geometry.oh} output rows)")
        width = _computed_width(geometry.ow, pool)
        n_chunks = len(row_chunks(width, vector_width)) if width >= vector_width else 0
        if not 1 <= n_chunks <= MAX_CHUNKS:
            raise ValueError(f"row conv: output width {width} not in "
                             f"[{vector_width}, {vector_width * MAX_CHUNKS}]")
        # accumulators: the registers less C_out weight broadcasts and the input vectors in
        # flight (more would spill). A pooled tile holds the pool's two rows.
        budget = vector_registers(vector_width) - 4 - c_out
        if pool:
            rows = 2
            chunks = max(1, min(n_chunks, budget // (c_out * rows)))
            row_tiles = geometry.oh // 2
        else:
            chunks = max(1, min(n_chunks, budget // c_out))
            rows = max(1, min(geometry.oh, budget // (c_out * chunks)))
            row_tiles = -(-geometry.oh // rows)
        strips = min(row_tiles, -(-MIN_TASKS // n))
        return cls(n, c_in, c_out, geometry, vector_width, out_block, activation, params, rows,
                   chunks, strips, pool)

    @property
    def out_hw(self) -> tuple[int, int]:
        """The output map: the conv's, or the pooled one."""
        g = self.geometry
        return (g.oh // 2, g.ow // 2) if self.pool else (g.oh, g.ow)

    oh = property(lambda self: self.out_hw[0])  # of the output (pooled, with `pool`)
    ow = property(lambda self: self.out_hw[1])

    @property
    def tiling(self) -> str:
        pooled = ", 2x2 max pool" if self.pool else ""
        return f"{self.c_out} channels x {self.rows} rows x {self.chunks} pixel vectors{pooled}"

    @property
    def num_tasks(self) -> int:
        return self.n * self.strips

    @property
    def flops(self) -> int:
        g = self.geometry
        return 2 * self.n * self.c_out * g.oh * g.ow * self.c_in * g.kh * g.kw

    def pack_weights(self, weight: np.ndarray, bias: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(C_out, C_in, KH, KW) -> (C_in, KH, KW, C_out); bias -> (ob,), zero-padded."""
        g = self.geometry
        if weight.shape != (self.c_out, self.c_in, g.kh, g.kw):
            raise ValueError(f"conv weight shape {weight.shape}, "
                             f"expected {(self.c_out, self.c_in, g.kh, g.kw)}")
        packed = np.ascontiguousarray(np.asarray(weight, np.float32).transpose(1, 2, 3, 0))
        bias_packed = np.zeros(self.out_block, dtype=np.float32)
        if bias is not None:
            bias_packed[:self.c_out] = bias
        return packed, bias_packed

    def row_tiles(self) -> list[int]:
        """Flattened (oh0, kh_lo, kh_hi) per row tile: its first output row (the last tile
        ends at the last row, overlapping its neighbour when `rows` does not divide OH) and the
        kernel rows that reach the image from any of its rows."""
        g, table = self.geometry, []
        if self.pool:  # pairs of rows, one per pooled row (an odd last row is never read)
            starts = [2 * t for t in range(g.oh // 2)]
        else:
            starts = [min(t * self.rows, g.oh - self.rows) for t in range(-(-g.oh // self.rows))]
        for oh0 in starts:
            table += [oh0, *g.kernel_rows(oh0, self.rows)]
        return table

    def emit(self, module: ir.Module, name: str) -> ir.Function:
        g, vw, ob, co = self.geometry, self.vector_width, self.out_block, self.c_out
        starts = row_chunks(_computed_width(g.ow, self.pool), vw)
        col_tiles = [starts[i:i + self.chunks] for i in range(0, len(starts), self.chunks)]
        tiles = self.row_tiles()
        row_tiles = len(tiles) // 3
        fn = define_kernel(module, name, 5, 2, KERNEL_ARGS, may_alias=("res", "out"))
        inp, w, bias, _res, out, task_begin, task_end = fn.args
        table = const_table(module, f"{name}.row_tiles", tiles)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        zeros = zero_buffer(module, g.w)
        n_acc = co * self.rows * self.chunks
        acc_slot = entry_alloca(b, ir.ArrayType(vec_type(vw), n_acc), "acc")
        slots = [b.gep(acc_slot, [i64(0), i64(k)], name=f"acc{k}") for k in range(n_acc)]
        biases = [broadcast(b, bias, c, vw, f"bias{c}") for c in range(co)]
        pad_lanes = not preserves_zero(self.activation, self.activation_params) and co < ob
        keep = ir.Constant(ir.VectorType(ir.IntType(1), vw), [i % ob < co for i in range(vw)])

        with for_range(b, task_begin, task_end, name="task") as task:
            img, strip = udiv_rem(b, task, self.strips, "task")
            # this strip's row tiles: [strip * T // S, (strip + 1) * T // S)
            t_lo = b.udiv(b.mul(strip, i64(row_tiles)), i64(self.strips), name="t_lo")
            t_hi = b.udiv(b.mul(b.add(strip, i64(1)), i64(row_tiles)), i64(self.strips),
                          name="t_hi")
            in_img = gep(b, inp, img, "in_img", scale=self.c_in * g.h * g.w)
            out_img = gep(b, out, img, "out_img", scale=self.oh * self.ow * ob)
            with for_range(b, t_lo, t_hi, name="rt") as rt:
                oh0, kh_lo, kh_hi = (load_table(b, table, linear(b, f"{f}.i", (rt, 3), const=k),
                                                f)
                                     for k, f in enumerate(("oh0", "kh_lo", "kh_hi")))
                for cols in col_tiles:
                    self._emit_tile(b, cols, oh0, kh_lo, kh_hi, in_img, w, out_img, zeros,
                                    slots, biases, keep if pad_lanes else None)
        b.ret_void()
        return fn

    def _emit_tile(self, b: ir.IRBuilder, cols: list[int], oh0: ir.Value, kh_lo: ir.Value,
                   kh_hi: ir.Value, in_img: ir.Value, w: ir.Value, out_img: ir.Value,
                   zeros: ir.Value, slots: list[ir.Value], biases: list[ir.Value],
                   keep: ir.Constant | None) -> None:
        g, vw, ob, co, rows = self.geometry, self.vector_width, self.out_block, self.c_out, \
            self.rows
        pt, pl = g.pads[0], g.pads[1]
        tag = f"c{cols[0]}"

        def slot(c: int, r: int, p: int) -> ir.Value:
            return slots[(c * rows + r) * self.chunks + p]

        for c in range(co):
            for r in range(rows):
                for p in range(len(cols)):
                    b.store(splat(0.0, vw), slot(c, r, p))
        with for_range(b, 0, self.c_in, name=f"ic.{tag}") as ic:
            plane = gep(b, in_img, ic, f"plane.{tag}", scale=g.h * g.w)
            w_ic = gep(b, w, ic, f"w_ic.{tag}", scale=g.kh * g.kw * co)
            # a runtime loop over the kernel rows that touch the image: it skips the rows
            # of zeros at the borders, and keeps LLVM from hoisting every tap's weights out
            # of the row loop (a single-channel input makes them invariant) and spilling them
            with for_range(b, kh_lo, kh_hi, name=f"kh.{tag}") as kh:
                row_ptrs = []
                for r in range(rows):
                    ih = linear(b, f"ih.{r}", (oh0, 1), (kh, g.dilation[0]), const=r - pt)
                    inside = b.icmp_unsigned("<", ih, i64(g.h), name=f"in.{r}")
                    real = gep(b, plane, ih, f"row.{r}", scale=g.w)
                    row_ptrs.append(b.select(inside, real, zeros, name=f"rowsel.{r}"))
                w_kh = gep(b, w_ic, kh, f"w_kh.{tag}", scale=g.kw * co)
                for j in range(g.kw):
                    wv = [broadcast(b, w_kh, j * co + c, vw, f"w{j}.{c}") for c in range(co)]
                    for p, ow0 in enumerate(cols):
                        col = ow0 - pl + j * g.dilation[1]
                        mask = [0 <= col + lane < g.w for lane in range(vw)]
                        for r in range(rows):
                            x = load_masked(b, row_ptrs[r], col, mask, f"x{j}.{p}.{r}")
                            for c in range(co):
                                s = slot(c, r, p)
                                b.store(fma(b, x, wv[c], b.load(s), f"f.{c}"), s)
        if self.pool:
            self._emit_pooled_epilogue(b, cols, oh0, out_img, slot, biases)
            return
        for r in range(rows):
            oh = b.add(oh0, i64(r), name=f"oh.{r}")
            out_row = gep(b, out_img, oh, f"orow.{r}", scale=g.ow * ob)
            for p, ow0 in enumerate(cols):
                chans = [b.fadd(b.load(slot(c, r, p)), biases[c], name=f"yb{c}")
                         for c in range(co)]
                chans += [splat(0.0, vw)] * (ob - co)
                for k, v in enumerate(blocked_transpose(b, chans, vw, f"tr.{r}.{p}")):
                    v = apply_activation(b, v, self.activation, self.activation_params,
                                         f"act{k}")
                    if keep is not None:
                        v = b.select(keep, v, splat(0.0, vw), name=f"pad{k}")
                    store(b, v, out_row, ow0 * ob + k * vw, f"y{k}")

    def _emit_pooled_epilogue(self, b: ir.IRBuilder, cols: list[int], oh0: ir.Value,
                              out_img: ir.Value, slot, biases: list[ir.Value]) -> None:
        """The tile's two rows -> one pooled row: bias and activation on each conv value
        first, in the reference's order (the max then only selects among them, so the result
        is bit-identical), the two rows' max, the max of lane pairs (2j, 2j+1), whose V/2
        results fill the low half of the transposed block."""
        vw, ob, co = self.vector_width, self.out_block, self.c_out
        out_row = gep(b, out_img, b.udiv(oh0, i64(2), name="ph"), "prow",
                             scale=self.ow * ob)
        evens = ir.Constant(ir.VectorType(I32, vw), [2 * i % vw for i in range(vw)])
        odds = ir.Constant(ir.VectorType(I32, vw), [(2 * i + 1) % vw for i in range(vw)])
        for p, ow0 in enumerate(cols):
            chans = []
            for c in range(co):
                rows = [apply_activation(b, b.fadd(b.load(slot(c, r, p)), biases[c],
                                                   name=f"yb{c}.{r}"),
                                         self.activation, self.activation_params, f"act{c}.{r}")
                        for r in range(2)]
                v = fmax(b, rows[0], rows[1], f"vmax{c}")
                pairs = fmax(b, b.shuffle_vector(v, v, evens, name=f"ev{c}"),
                              b.shuffle_vector(v, v, odds, name=f"od{c}"), f"hmax{c}")
                chans.append(pairs)  # lanes 0 .. V/2-1: pooled columns ow0/2 ..
            chans += [splat(0.0, vw)] * (ob - co)
            blocks = blocked_transpose(b, chans, vw, f"ptr.{p}")
            # the V/2 pooled pixels' vectors; padding channels are zeros already (activation
            # ran on the real channels only)
            for k, v in enumerate(blocks[:ob // 2]):
                store(b, v, out_row, ow0 // 2 * ob + k * vw, f"py{k}")
