"""Winograd F(m x m, 3 x 3) convolution for 3x3 stride-1 convs in NCHWc layout.

Runtime (one task = a chunk of K consecutive output tiles and a group of output-channel
blocks; tiles are numbered across the batch, so a chunk may span images and small maps still
fill chunks that re-stream the transformed weights rarely. K sized so the transformed input
fits a stack alloca of <= ~640 KB, and small enough, with enough groups, that the batch gives
every thread work; see `split`):
(1) B^T d B for the chunk's tiles, all C_in channels, into V[tile][pos][ci]; (2) per
output-channel block of the group (2 blocks when a chunk has <= 4 tiles) and position, a
register-tiled GEMM over groups of T <= 8 tiles (one weight vector + T broadcasts per step;
the block's weights stay in L1 across the groups) into M; (3) A^T m A for every tile of the
chunk, fused epilogue, stores guarded for partial tiles. Tiles past the batch's last tile
(last chunk) are computed from zeros and never stored, and every output value is one task's
fixed-order sum, so every task split gives the same bits.

Transform matrices are built by Toom-Cook from interpolation points plus the point at
infinity; B^T is solved from the bilinear identity so that any point set is exact in float64.
The 1/prod(p_j - p_l) scaling lives in G, i.e. in the pack-time (float64) weight transform,
which keeps the runtime transforms' constants small (why F(4x4) stays accurate in fp32).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from graphcnn.backends.llvm.kernels.conv2d_nchwc import (
    KERNEL_ARGS,
    Conv2dNCHWcPlan,
    emit_epilogue,
)
from llvmlite import ir

from ..builder import (
    BF16,
    F32,
    F32P,
    broadcast,
    define_kernel,
    dot_bf16_pairs,
    entry_alloca,
    fma,
    for_range,
    i64,
    lane_mask,
    linear,
    load,
    splat,
    store,
    store_bf16,
    udiv_rem,
    zero_buffer,
)
from ..codegen import O1
from .bf16 import pair_words

SCRATCH_BUDGET = 640 * 1024     # bytes of transformed input per task (stack alloca)
REG_TILES = 8                   # tiles per GEMM register tile: 8 independent FMA chains
MIN_TASKS = 4                   # tasks worth cutting the batch into: 2 per thread on 2 cores
L2_BYTES = 1 << 20              # transformed weights that stay in a core's L2 (1.25-2 MiB)


def _tiles_per_chunk(total: int, chunks: int) -> int:
    """K for cutting `total` tiles into at most `chunks` chunks: a multiple of REG_TILES once
    above it (the GEMM's register tile)."""
    k = -(-total // max(1, chunks))
    return k if k <= REG_TILES else -(-k // REG_TILES) * REG_TILES


def _lincomb(b: ir.IRBuilder, coeffs: np.ndarray, xs: list[ir.Value], name: str) -> ir.Value:
    """sum(c * x) with the fp32-rounded constants; zeros skipped, +-1 as add/sub."""
    acc = None
    for k, (c, x) in enumerate(zip(coeffs, xs, strict=True)):
        c = float(np.float32(c))
        if c == 0.0:
            continue
        width = x.type.count
        if acc is None:
            acc = x if c == 1.0 else b.fmul(x, splat(c, width), name=f"{name}.{k}")
        elif c == 1.0:
            acc = b.fadd(acc, x, name=f"{name}.{k}")
        elif c == -1.0:
            acc = b.fsub(acc, x, name=f"{name}.{k}")
        else:
            acc = fma(b, x, splat(c, width), acc, f"{name}.{k}")
    if acc is None:
        return splat(0.0, xs[0].type.count)
    return acc


def _transform_2d(b: ir.IRBuilder, left: np.ndarray, tile: list[list[ir.Value]],
                  name: str) -> list[list[ir.Value]]:
    """left @ tile @ left^T on a grid of vectors."""
    cols = len(tile[0])
    tmp = [[_lincomb(b, left[i], [tile[t][j] for t in range(len(tile))], f"{name}.r{i}{j}")
            for j in range(cols)] for i in range(left.shape[0])]
    return [[_lincomb(b, left[l], tmp[i], f"{name}.c{i}{l}") for l in range(left.shape[0])]
            for i in range(left.shape[0])]

POINTS = {2: (0.0, 1.0, -1.0), 4: (0.0, 1.0, -1.0, 2.0, -2.0)}
POINTS_HALF = (0.0, 1.0, -1.0, 0.5, -0.5)   # F(4x4) alternative, compared in the benchmark


def transforms(m: int, r: int = 3, points: tuple[float, ...] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T (m x n), G (n x r), B^T (n x n)) in float64 for F(m, r), n = m + r - 1."""
    points = POINTS[m] if points is None else points
    n = m + r - 1
    if len(points) != n - 1:
        raise ValueError(f"F({m},{r}) needs {n - 1} finite points, got {len(points)}")
    p = np.asarray(points, dtype=np.float64)
    at = np.zeros((m, n))
    at[:, :n - 1] = p[None, :] ** np.arange(m)[:, None]
    at[m - 1, n - 1] = 1.0
    g = np.zeros((n, r))
    for j in range(n - 1):
        denom = np.prod([p[j] - p[k] for k in range(n - 1) if k != j])
        g[j] = p[j] ** np.arange(r) / denom
    g[n - 1, r - 1] = 1.0
    # Solve sum_j AT[i,j] G[j,k] BT[j,t] = [t == i + k] for BT (linear in BT).
    rows, rhs = [], []
    for i in range(m):
        for k in range(r):
            coef = at[i] * g[:, k]                      # weight of BT[j, :] in this equation
            for t in range(n):
                row = np.zeros((n, n))
                row[:, t] = coef
                rows.append(row.ravel())
                rhs.append(1.0 if t == i + k else 0.0)
    sol, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    bt = sol.reshape(n, n)
    if not np.allclose(np.array(rows) @ sol, rhs, atol=1e-9):
        raise ValueError(f"points {points} do not give an exact F({m},{r})")
    return at, g, bt


def winograd_conv_numpy(x: np.ndarray, w: np.ndarray, pads: tuple[int, int, int, int],
                        m: int = 4, points: tuple[float, ...] | None = None,
                        dtype: type = np.float32) -> np.ndarray:
    """NCHW Winograd conv computed in `dtype` (weights transformed in float64, then cast),
    mirroring the kernel's data flow: input tiles -> per-position GEMM -> output tiles."""
    at, g, bt = transforms(m, 3, points)
    n_img, c_in, h, wd = x.shape
    c_out = w.shape[0]
    t, l, b, r = pads
    oh, ow = h + t + b - 2, wd + l + r - 2
    th, tw = -(-oh // m), -(-ow // m)
    a = m + 2
    xp = np.zeros((n_img, c_in, th * m + 2, tw * m + 2), dtype=dtype)
    xp[:, :, t:t + h, l:l + wd] = x
    u = np.einsum("ij,ocjk,lk->ilco", g, w.astype(np.float64), g).astype(dtype)  # (a,a,ci,co)
    tiles = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(2, 3))[:, :, ::m, ::m]
    btd = bt.astype(dtype)
    v = np.einsum("ij,ncyxjk,lk->ilnyxc", btd, tiles, btd)                     # (a,a,n,y,x,ci)
    mm = np.einsum("ilnyxc,ilco->ilnyxo", v, u)
    atd = at.astype(dtype)
    y = np.einsum("pi,ilnyxo,ql->noypxq", atd, mm, atd).reshape(n_img, c_out, th * m, tw * m)
    return y[:, :, :oh, :ow]


def direct_conv_f64(x: np.ndarray, w: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    t, l, b, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (l, r)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    return np.einsum("ncyxij,ocij->noyx", win, w.astype(np.float64))


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@dataclass(frozen=True)
class WinogradConv2dNCHWcPlan:
    """Drop-in for Conv2dNCHWcPlan (same create() keywords, attributes, packing call and
    kernel ABI) for 3x3 stride-1 dilation-1 ungrouped convs; `m` picks F(m x m, 3x3)."""
    direct: Conv2dNCHWcPlan     # geometry, blocks, epilogue: validated by the colleague's plan
    m: int                      # output tile side (4 -> F(4x4,3x3), 2 -> F(2x2,3x3))
    # bf16 (AVX512-BF16): the transformed input V is stored rounded to bf16 and U packed as
    # bf16 pairs of input channels; the GEMM steps over channel pairs, one vdpbf16ps each.
    # The input, the transforms and the output stay float32
    bf16: bool = False
    # LLVM's O1, not the "lean" pipeline of the other plans: the transforms' 36 live vectors
    # need its scheduling to spill less (codegen.PIPELINES)
    pipeline: ClassVar[str] = O1

    @classmethod
    def create(cls, *, n: int, c_in: int, h: int, w: int, c_out: int, kh: int, kw: int,
               stride: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0),
               dilation: tuple[int, int] = (1, 1), groups: int = 1, m: int = 4,
               bf16: bool = False, **kwargs: object) -> WinogradConv2dNCHWcPlan:
        if (kh, kw) != (3, 3) or tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) \
                or groups != 1:
            raise ValueError(f"winograd conv needs 3x3, stride 1, dilation 1, groups 1: "
                             f"kernel {(kh, kw)} stride {stride} dilation {dilation} "
                             f"groups {groups}")
        if m not in POINTS:
            raise ValueError(f"winograd tile m={m} not in {sorted(POINTS)}")
        kwargs.pop("tiling", None)
        direct = Conv2dNCHWcPlan.create(n=n, c_in=c_in, h=h, w=w, c_out=c_out, kh=3, kw=3,
                                        pads=tuple(pads), **kwargs)
        if bf16 and (direct.in_block != 16 or direct.out_block != 16):
            raise ValueError(f"the bf16 winograd conv needs 16-channel blocks, got "
                             f"{direct.in_block} and {direct.out_block}")
        return cls(direct, m, bf16)

    in_block = property(lambda self: self.direct.in_block)
    out_block = property(lambda self: self.direct.out_block)
    oh = property(lambda self: self.direct.oh)
    ow = property(lambda self: self.direct.ow)
    flops = property(lambda self: self.direct.flops)

    @property
    def tiles(self) -> tuple[int, int]:
        return -(-self.oh // self.m), -(-self.ow // self.m)

    @property
    def reg_blocks(self) -> int:
        """Output blocks the GEMM's register tile spans (`o_reg`): 2 when a chunk has <= 4
        tiles (still >= 8 independent FMA chains), else 1."""
        return 2 if self._split[0] <= 4 and self.direct.ocb % 2 == 0 else 1

    @property
    def _split(self) -> tuple[int, int]:
        """(tiles per task K, output-block groups G); see `split`."""
        d = self.direct
        th, tw = self.tiles
        total = d.n * th * tw
        per_tile = (self.m + 2) ** 2 * (d.icb * d.in_block + 2 * d.out_block) * 4
        k = _tiles_per_chunk(total, -(-total // max(1, SCRATCH_BUDGET // per_tile)))
        u_bytes = (self.m + 2) ** 2 * d.icb * d.in_block * d.ocb * d.out_block * 4
        groups = 1

        def tasks() -> int:
            return -(-total // k) * groups

        def more_chunks() -> None:
            nonlocal k
            want = -(-MIN_TASKS // groups)
            k = min(k, max(min(total, REG_TILES), total // want // REG_TILES * REG_TILES))

        def more_groups() -> None:
            nonlocal groups
            units = d.ocb // (2 if k <= 4 and d.ocb % 2 == 0 else 1)
            want = -(-MIN_TASKS // -(-total // k))
            # a divisor of the units if one is big enough: equal groups, equal tasks
            groups = max(groups, min([u for u in range(want, units + 1) if units % u == 0]
                                     or [units]))

        # Split the batch's work until there are MIN_TASKS tasks. Smaller chunks re-stream the
        # transformed weights U once per chunk, more output-block groups redo the input
        # transform once per group: cut chunks first while U fits in L2, else groups first.
        steps = (more_chunks, more_groups) if u_bytes <= L2_BYTES else \
            (more_groups, more_chunks)
        for step in steps:
            if tasks() < MIN_TASKS:
                step()
        return k, groups

    @property
    def split(self) -> tuple[int, int, int]:
        """(tiles per task K, register tile T, output-block groups G). A task is (group of
        output blocks, chunk of K consecutive tiles of the batch); K is a multiple of T and
        keeps V within SCRATCH_BUDGET. The batch is cut into >= MIN_TASKS tasks so every
        thread has work."""
        k, groups = self._split
        return k, min(k, REG_TILES), groups

    @property
    def num_tasks(self) -> int:
        """Tasks = (output-block group, chunk of K consecutive tiles of the batch)."""
        th, tw = self.tiles
        k, _, groups = self.split
        return groups * -(-(self.direct.n * th * tw) // k)

    def pack_weights(self, weight: np.ndarray,
                     bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(C_out, C_in, 3, 3) -> U = G g G^T in float64, cast once:
        (a*a, OCB, ICB, ib, ob) so each position is a blocked C_in x C_out GEMM operand."""
        d = self.direct
        if weight.shape != (d.c_out, d.c_in, 3, 3):
            raise ValueError(f"conv weight shape {weight.shape}, "
                             f"expected {(d.c_out, d.c_in, 3, 3)}")
        _, g, _ = transforms(self.m)
        a, ib, ob = self.m + 2, d.in_block, d.out_block
        padded = np.zeros((d.ocb * ob, d.icb * ib, 3, 3))
        padded[:d.c_out, :d.c_in] = weight
        u = np.einsum("ij,ocjk,lk->ilco", g, padded, g).reshape(a * a, d.icb, ib, d.ocb, ob)
        packed = np.ascontiguousarray(u.transpose(0, 3, 1, 2, 4), dtype=np.float32)
        if self.bf16:  # (a*a, OCB, ICB, ib/2, ob) words, each the pair of channels (2p, 2p+1)
            pairs = packed.reshape(a * a, d.ocb, d.icb, ib // 2, 2, ob).transpose(0, 1, 2, 3, 5, 4)
            packed = pair_words(pairs)
        bias_packed = np.zeros(d.ocb * ob, dtype=np.float32)
        if bias is not None:
            bias_packed[:d.c_out] = bias
        return packed, bias_packed

    def emit(self, module: ir.Module, name: str) -> ir.Function:
        """`void name(in, w_packed, bias_packed, residual_or_null, out, task_begin, task_end)`."""
        d, m = self.direct, self.m
        g_ = d.geometry
        a, aa, ib, ob = m + 2, (m + 2) ** 2, d.in_block, d.out_block
        ci_all, ocb_n = d.icb * ib, d.ocb
        th, tw = self.tiles
        k_tiles, t_reg, groups = self.split
        total = d.n * th * tw           # tiles of the batch, image-major
        chunks = -(-total // k_tiles)
        at, _, bt = transforms(m)
        pt, pl = g_.pads[0], g_.pads[1]

        fn = define_kernel(module, name, 5, 2, KERNEL_ARGS, may_alias=("res", "out"))
        inp, w, bias, res, out, task_begin, task_end = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        v_slot = entry_alloca(b, ir.ArrayType(BF16 if self.bf16 else F32,
                                              k_tiles * aa * ci_all), "V")
        o_reg = self.reg_blocks
        units = ocb_n // o_reg
        m_slot = entry_alloca(b, ir.ArrayType(F32, o_reg * k_tiles * aa * ob), "M")
        acc_slot = entry_alloca(b, ir.ArrayType(ir.VectorType(F32, ob), t_reg * o_reg), "acc")
        v_buf = b.bitcast(v_slot, F32P, name="vbuf")  # bf16: read as words (channel pairs)
        # the GEMM's reduction: channels, or (bf16) pairs of channels as 32-bit words
        ci_red = ci_all // 2 if self.bf16 else ci_all
        m_buf = b.bitcast(m_slot, F32P, name="mbuf")
        zeros = zero_buffer(module, max(ib, ob))
        h, wd, oh, ow = i64(g_.h), i64(g_.w), i64(self.oh), i64(self.ow)

        with for_range(b, task_begin, task_end, name="task") as task:
            # task = (group, chunk): neighbouring tasks share the group's slice of U
            group, chunk = udiv_rem(b, task, chunks, "chunk")
            ocb_lo = b.mul(b.udiv(b.mul(group, i64(units)), i64(groups)), i64(o_reg),
                           name="ocb.lo")
            ocb_hi = b.mul(b.udiv(b.mul(b.add(group, i64(1)), i64(units)), i64(groups)),
                           i64(o_reg), name="ocb.hi")
            tile0 = linear(b, "tile0", (chunk, k_tiles))
            # register groups holding real tiles (the last chunk may be short): tiles past
            # the batch's end are computed (from zeros) only up to the end of their group
            left = b.sub(i64(total), tile0, name="left")
            real = b.select(b.icmp_unsigned("<", left, i64(k_tiles)), left, i64(k_tiles),
                            name="real")
            n_grp = b.udiv(b.add(real, i64(t_reg - 1)), i64(t_reg), name="ngrp")
            # (1) input transform of the chunk's tiles
            with for_range(b, 0, b.mul(n_grp, i64(t_reg)), name="kt") as kt:
                tile = b.add(tile0, kt, name="tile")
                real_tile = b.icmp_unsigned("<", tile, i64(total), name="real_tile")
                img, in_tile = udiv_rem(b, tile, th * tw, "timg")
                ty, tx = udiv_rem(b, in_tile, tw, "txy")
                in_img = linear(b, "in_img", (img, d.icb * g_.h * g_.w * ib))
                ih0 = linear(b, "ih0", (ty, m), const=-pt)
                iw0 = linear(b, "iw0", (tx, m), const=-pl)
                with for_range(b, 0, d.icb, name="icb") as icb:
                    base = b.gep(inp, [linear(b, "inb", (in_img, 1), (icb, g_.h * g_.w * ib))],
                                 name="inbase")
                    grid = []
                    for i in range(a):
                        ih = b.add(ih0, i64(i), name=f"ih{i}")
                        row_ok = b.and_(real_tile, b.icmp_unsigned("<", ih, h),
                                        name=f"rok{i}")
                        row = []
                        for j in range(a):
                            iw = b.add(iw0, i64(j), name=f"iw{i}{j}")
                            ok = b.and_(row_ok, b.icmp_unsigned("<", iw, wd, name=f"cok{i}{j}"),
                                        name=f"ok{i}{j}")
                            off = linear(b, f"off{i}{j}", (ih, g_.w * ib), (iw, ib))
                            p = b.select(ok, b.gep(base, [off], name=f"p{i}{j}"), zeros,
                                         name=f"ps{i}{j}")
                            row.append(load(b, p, 0, ib, f"x{i}{j}"))
                        grid.append(row)
                    v = _transform_2d(b, bt, grid, "bt")
                    for i in range(a):
                        for j in range(a):
                            off = linear(b, f"vo{i}{j}", (kt, aa * ci_all), (icb, ib),
                                         const=(i * a + j) * ci_all)
                            (store_bf16 if self.bf16 else store)(b, v[i][j], v_buf, off,
                                                                 f"vs{i}{j}")
            # (2) GEMM: weights U[pos][ocb] (C_in x ob) stay in L1 across the chunk's tile
            # groups; per group T accumulators, one weight vector + T broadcasts per step.
            with for_range(b, ocb_lo, ocb_hi, step=o_reg, name="ocb") as ocb:
                with for_range(b, 0, aa, name="pos") as pos:
                    w_row = linear(b, "wrow", (pos, ocb_n * ci_red * ob), (ocb, ci_red * ob))
                    with for_range(b, 0, n_grp, name="grp") as grp:
                        slots = [[b.gep(acc_slot, [i64(0), i64(t * o_reg + o)])
                                  for o in range(o_reg)] for t in range(t_reg)]
                        for row in slots:
                            for slot in row:
                                b.store(splat(0.0, ob), slot)
                        v_row = linear(b, "vrow", (grp, t_reg * aa * ci_red), (pos, ci_red))
                        step = dot_bf16_pairs if self.bf16 else fma
                        with for_range(b, 0, ci_red, name="ci") as ci:
                            woff = linear(b, "woff", (w_row, 1), (ci, ob))
                            wv = [load(b, w, b.add(woff, i64(o * ci_red * ob)), ob, f"wv{o}")
                                  for o in range(o_reg)]
                            vo = b.add(v_row, ci, name="vo")
                            for t in range(t_reg):
                                x = broadcast(b, v_buf, b.add(vo, i64(t * aa * ci_red)), ob,
                                              f"bx{t}")
                                for o in range(o_reg):
                                    acc = step(b, x, wv[o], b.load(slots[t][o]), f"f{t}.{o}")
                                    b.store(acc, slots[t][o])
                        for t in range(t_reg):
                            for o in range(o_reg):
                                store(b, b.load(slots[t][o]), m_buf,
                                          linear(b, "mo", (grp, t_reg * aa * ob), (pos, ob),
                                                 const=(o * k_tiles + t) * aa * ob), f"ms{t}")
                # (3) output transform + epilogue of every tile of the chunk
                for o in range(o_reg):
                    ocb_o = b.add(ocb, i64(o), name="ocbo")
                    bias_v = load(b, bias, linear(b, "bo", (ocb_o, ob)), ob, "bias")
                    is_last = b.icmp_unsigned("==", ocb_o, i64(ocb_n - 1), name="last")
                    out_blk = linear(b, "oblk", (ocb_o, self.oh * self.ow * ob))
                    # a runtime loop over the chunk's tiles, not unrolled by T like the
                    # GEMM: each tile's transform is independent work with ILP of its own,
                    # and unrolling it 8x made this the bulk of the kernel's IR (LLVM time)
                    with for_range(b, 0, b.mul(n_grp, i64(t_reg)), name="okt") as kt:
                        m_off = linear(b, "mgo", (kt, aa * ob), const=o * k_tiles * aa * ob)
                        mg_base = b.gep(m_buf, [m_off], name="mgb")
                        mg = [[load(b, mg_base, (i * a + j) * ob, ob, f"mg{i}{j}")
                               for j in range(a)] for i in range(a)]
                        y = _transform_2d(b, at, mg, "at")
                        tile = b.add(tile0, kt, name="otile")
                        real_tile = b.icmp_unsigned("<", tile, i64(total), name="oreal")
                        img, in_tile = udiv_rem(b, tile, th * tw, "oimg")
                        ty, tx = udiv_rem(b, in_tile, tw, "oxy")
                        out_img = linear(b, "oimg", (img, ocb_n * self.oh * self.ow * ob),
                                         (out_blk, 1))
                        for i in range(m):
                            oy = linear(b, f"oy{i}", (ty, m), const=i)
                            row_ok = b.and_(real_tile, b.icmp_unsigned("<", oy, oh),
                                            name=f"orok{i}")
                            for j in range(m):
                                ox = linear(b, f"ox{j}", (tx, m), const=j)
                                ok = b.and_(row_ok, b.icmp_unsigned("<", ox, ow),
                                            name=f"ook{i}{j}")
                                with b.if_then(ok):
                                    off = linear(b, f"oo{i}{j}", (out_img, 1),
                                                 (oy, self.ow * ob), (ox, ob))
                                    r = (load(b, res, off, ob, f"res{i}{j}")
                                         if d.residual else None)
                                    val = emit_epilogue(b, y[i][j], bias_v, r, d.activation,
                                                        d.activation_params, None,
                                                        f"ep{i}{j}")
                                    if d.mask_last_group:
                                        masked = lane_mask(b, val, d.c_out % ob, f"mk{i}{j}")
                                        val = b.select(is_last, masked, val)
                                    store(b, val, out, off, f"os{i}{j}")
        b.ret_void()
        return fn
