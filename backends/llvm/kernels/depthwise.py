"""Depthwise 2-D convolution (groups == channels, multiplier 1) on the NCHW[x]c layout, and
its generalisation to groups of `group_size` channels that fit in a block (ResNeXt's 4, RegNet's
8 in 16 lanes; channels per group the same in and out).

Every lane is its own channel, so the kernel is pure vector FMAs: output pixel vector +=
input pixel vector * weight vector. With groups of g > 1 lanes, output lane l reduces over its
group's g input lanes: for each k < g, the input vector with lane l taking lane
(l // g) * g + k (one shufflevector) times the weight vector of every lane's k-th input:
g shuffles + g FMAs per pixel and tap, where the grouped direct kernel does a full block
of broadcast FMAs (b / g times the useful work).

The depthwise kernel is bound by loads, not FMAs, so the microkernel keeps one output row
tile of `width` pixels in registers, unrolls the kernel columns (LLVM then loads each input
vector once and reuses it for every pixel it feeds, as neighbouring kernel columns read the
same input) and loops over the valid kernel rows. Border columns are static:
out-of-image (pixel, kernel column) taps are simply not emitted.

Layouts: input/output (N, ceil(C/b), H, W, b); weights packed (CB, KH, KW, g, b); bias (CB*b,).
Padding channels of the output are written as zeros. Tasks = (image, channel block, output
row), the same loop as the dense conv (`TaskLoop`), so the ABI is identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from llvmlite import ir

from ..builder import (
    check_activation,
    define_kernel,
    entry_alloca,
    fma,
    for_range,
    gep,
    load,
    splat,
    store,
    store_bf16,
    vec_type,
)
from .conv2d_nchwc import (
    KERNEL_ARGS,
    TILE_ARGS,
    ConvGeometry,
    TaskLoop,
    TileKey,
    Tiling,
    emit_epilogue,
    split_even,
    vector_registers,
)


@dataclass(frozen=True)
class DepthwiseConv2dNCHWcPlan:
    n: int
    channels: int
    geometry: ConvGeometry
    vector_width: int       # lanes per vector = block
    block: int
    activation: str
    activation_params: tuple[float, ...]
    residual: bool
    tiling: Tiling
    group_size: int = 1     # channels per group (in and out); 1: depthwise
    out_bf16: bool = False  # the epilogue stores bf16 (passes/precision.py, rule 2)

    @classmethod
    def create(cls, *, n: int, c_in: int, h: int, w: int, c_out: int, kh: int, kw: int,
               stride: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0),
               dilation: tuple[int, int] = (1, 1), vector_width: int = 16,
               in_block: int | None = None, out_block: int | None = None,
               activation: str = "none", activation_params: tuple[float, ...] = (),
               residual: bool = False, group_size: int = 1, out_bf16: bool = False
               ) -> DepthwiseConv2dNCHWcPlan:
        params = check_activation(activation, activation_params)
        if c_in != c_out:
            raise ValueError(f"depthwise conv needs c_in == c_out, got {c_in} and {c_out}")
        block = out_block or in_block or vector_width
        if (in_block or block) != block or (out_block or block) != block:
            raise ValueError(f"depthwise conv needs in_block == out_block, got {in_block}, "
                             f"{out_block}")
        if block > vector_width or vector_width % block:
            raise ValueError(f"block {block} must divide vector_width {vector_width}")
        if min(n, c_in, block) < 1:
            raise ValueError(f"depthwise conv needs n, channels, block >= 1: n={n} c={c_in} "
                             f"block={block}")
        if group_size < 1 or block % group_size or c_in % group_size:
            raise ValueError(f"group_size {group_size} must divide block {block} and "
                             f"channels {c_in}")
        geometry = ConvGeometry(h, w, kh, kw, tuple(stride), tuple(pads), tuple(dilation))
        if group_size == 1:
            # Accumulators + the KW weight vectors of a kernel row + a few loaded inputs.
            max_width = max(1, vector_registers(vector_width) - kw - 4)
        else:
            # Accumulators + their input vectors of one kernel column + weight and shuffle.
            max_width = max(1, (vector_registers(vector_width) - 4) // 2)
        tiling = Tiling(1, (1,) * geometry.oh, tuple(split_even(geometry.ow, max_width)))
        if out_bf16 and block != 16:
            raise ValueError(f"a bf16 output needs 16-channel blocks, got {block}")
        return cls(n, c_in, geometry, block, block, activation, params, residual, tiling,
                   group_size, out_bf16)

    @property
    def in_block(self) -> int:
        return self.block

    @property
    def out_block(self) -> int:
        return self.block

    @property
    def oh(self) -> int:
        return self.geometry.oh

    @property
    def ow(self) -> int:
        return self.geometry.ow

    @property
    def cb(self) -> int:
        return -(-self.channels // self.block)

    @property
    def num_tasks(self) -> int:
        return self.task_loop.num_tasks

    @property
    def flops(self) -> int:
        g = self.geometry
        return 2 * self.n * self.channels * self.oh * self.ow * g.kh * g.kw * self.group_size

    @cached_property
    def task_loop(self) -> TaskLoop:
        g, b = self.geometry, self.block
        # Padding lanes are masked whatever the activation: they would otherwise carry
        # 0 * (whatever the producer left there).
        return TaskLoop(g, self.tiling, self.n, self.cb, b, self.vector_width,
                        in_image_stride=self.cb * g.h * g.w * b, in_group_stride=g.h * g.w * b,
                        w_group_stride=g.kh * g.kw * self.group_size * b, out_blocks=self.cb,
                        mask_last_group=self.channels % b != 0, out_bf16=self.out_bf16)

    def pack_weights(self, weight: np.ndarray,
                     bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(C, g, KH, KW) -> (CB, KH, KW, g, b): [.., k, lane] is lane's weight for the k-th
        input of its group; bias -> (CB*b,), zero-padded."""
        g, b, gs = self.geometry, self.block, self.group_size
        expected = (self.channels, gs, g.kh, g.kw)
        if weight.shape != expected:
            raise ValueError(f"depthwise weight shape {weight.shape}, expected {expected}")
        padded = np.zeros((self.cb * b, gs, g.kh, g.kw), dtype=np.float32)
        padded[:self.channels] = weight
        packed = padded.reshape(self.cb, b, gs, g.kh, g.kw).transpose(0, 3, 4, 2, 1)
        bias_packed = np.zeros(self.cb * b, dtype=np.float32)
        if bias is not None:
            bias_packed[:self.channels] = bias
        return np.ascontiguousarray(packed), bias_packed

    def emit(self, module: ir.Module, name: str) -> ir.Function:
        """Emit `void name(in, w_packed, bias_packed, residual_or_null, out, task_begin,
        task_end)`; same ABI as `Conv2dNCHWcPlan.emit`."""
        fn = define_kernel(module, name, 5, 2, KERNEL_ARGS, may_alias=("res", "out"))
        kernels = {key: self._emit_tile_kernel(module, f"{name}.tile{i}", key)
                   for i, key in enumerate(self.task_loop.tile_keys())}
        self.task_loop.emit(module, fn, kernels)
        return fn

    def _emit_tile_kernel(self, module: ir.Module, name: str, key: TileKey) -> ir.Function:
        _, (width, guards), mask = key
        g, vw = self.geometry, self.vector_width
        valid_kw = {j: range(lo, hi) for j, lo, hi in guards}
        fn = define_kernel(module, name, 5, 4, TILE_ARGS, internal=True, may_alias=("res", "out"))
        inp, w, bias, res, out, _ih0, kh_lo, kh_hi, _icb_count = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        accs = [entry_alloca(b, vec_type(vw), f"acc{j}") for j in range(width)]
        for acc in accs:
            b.store(splat(0.0, vw), acc)

        with for_range(b, kh_lo, kh_hi, name="kh") as kh:
            in_k = gep(b, inp, kh, "in_k", scale=g.dilation[0] * g.w * vw)
            if self.group_size == 1:
                self._depthwise_row(b, in_k, gep(b, w, kh, "w_k", scale=g.kw * vw), accs,
                                    width, valid_kw)
            else:
                self._grouped_row(b, in_k, gep(b, w, kh, "w_k", scale=g.kw * self.group_size
                                               * vw), accs, width, valid_kw)

        last_lanes = self.channels - (self.cb - 1) * self.block
        bias_v = load(b, bias, 0, vw, "bias")
        for j in range(width):
            res_v = load(b, res, j * vw, vw, f"res{j}") if self.residual else None
            value = emit_epilogue(b, b.load(accs[j], name=f"sum{j}"), bias_v, res_v,
                                  self.activation, self.activation_params,
                                  last_lanes if mask else None, f"y{j}")
            (store_bf16 if self.out_bf16 else store)(b, value, out, j * vw, f"out{j}")
        b.ret_void()
        return fn

    def _depthwise_row(self, b: ir.IRBuilder, in_k: ir.Value, w_k: ir.Value, accs: list,
                       width: int, valid_kw: dict) -> None:
        """One kernel row: acc[j] += x[j, k] * w[k], every lane its own channel."""
        g, vw = self.geometry, self.vector_width
        wv = [load(b, w_k, k * vw, vw, f"w{k}") for k in range(g.kw)]
        for j in range(width):
            for k in valid_kw.get(j, range(g.kw)):
                offset = (j * g.stride[1] + k * g.dilation[1]) * vw
                x = load(b, in_k, offset, vw, f"x{j}_{k}")
                acc = b.load(accs[j], name=f"acc{j}.v")
                b.store(fma(b, x, wv[k], acc, f"fma{j}_{k}"), accs[j])

    def _grouped_row(self, b: ir.IRBuilder, in_k: ir.Value, w_k: ir.Value, accs: list,
                     width: int, valid_kw: dict) -> None:
        """One kernel row with groups of gs lanes: acc[j] += shuffle_i(x[j, k]) * w[k, i],
        shuffle_i giving lane l the i-th input lane of its group."""
        g, vw, gs = self.geometry, self.vector_width, self.group_size
        i32 = ir.IntType(32)
        for k in range(g.kw):
            cols = [j for j in range(width) if k in valid_kw.get(j, range(g.kw))]
            xs = {j: load(b, in_k, (j * g.stride[1] + k * g.dilation[1]) * vw, vw,
                          f"x{j}_{k}") for j in cols}
            for i in range(gs):
                wv = load(b, w_k, (k * gs + i) * vw, vw, f"w{k}_{i}")
                mask = ir.Constant(ir.VectorType(i32, vw),
                                   [(lane // gs) * gs + i for lane in range(vw)])
                for j in cols:
                    x = b.shuffle_vector(xs[j], xs[j], mask, name=f"x{j}_{k}_{i}")
                    acc = b.load(accs[j], name=f"acc{j}.v")
                    b.store(fma(b, x, wv, acc, f"fma{j}_{k}_{i}"), accs[j])
