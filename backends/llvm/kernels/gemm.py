"""Packed SGEMM: Y = act(alpha * op(A) @ op(B) + beta * C), B constant and pre-packed.

A (row-major (m, k), or (k, m) with trans_a) and Y (row-major (m, n)) are plain; C is
broadcast to (m, n) by numpy rules from `c_shape` = () / (1,) / (1, 1) (scalar), (n,) /
(1, n) (bias row, the default), (m, 1) (column) or (m, n) (full). B is packed at compile
time into column panels of one vector: (NP, k, vw), NP = ceil(n / vw), zero-padded.

Microkernel: an accumulator tile of `mr` rows of A x `nr` panels (nr vectors) stays in
registers across the whole k loop; each k step loads nr panel vectors and broadcasts mr
elements of A. Tile sizes: `choose_gemm_tiling`. The last panel of an n that is not a
multiple of vw is loaded and stored lane by lane (Y and C are not padded).

Tasks = (panel group, row tile), panel group outermost so consecutive tasks reuse the same
packed B panels from cache; every Y element is written by one task in a fixed order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ..builder import (
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
    linear,
    load,
    load_partial,
    load_table,
    prefetch,
    splat,
    store_partial,
    udiv_rem,
    vec_type,
)
from .bf16 import pair_words
from .conv2d_nchwc import Tiling, choose_tiling, emit_branches, vector_registers

KERNEL_ARGS = ("a", "b", "c", "y", "task_begin", "task_end")
# How far ahead in a B panel to prefetch: 64 k steps. Worth 1.8x on a 4096x4096 dense layer
# at batch 16 (B streamed from DRAM); neutral when B is cache-resident.
B_PREFETCH_FLOATS = 1024
TILE_ARGS = ("a", "b", "c", "y")


def _c_kind(c_shape: tuple[int, ...], m: int, n: int) -> str:
    """How C broadcasts to (m, n): 'scalar', 'row' (n,), 'column' (m, 1) or 'full' (m, n)."""
    shape = tuple(c_shape)
    if all(d == 1 for d in shape):
        return "scalar"
    if shape in ((n,), (1, n)):
        return "row"
    if shape == (m, 1):
        return "column"
    if shape == (m, n):
        return "full"
    raise ValueError(f"C of shape {shape} does not broadcast to ({m}, {n})")


def choose_gemm_tiling(m: int, panels: int, registers: int) -> Tiling:
    """Small m (dense layers at small batch): one row tile covering all of m with the most
    panels that still fit, so the (large, memory-bound) B is streamed exactly once.
    Otherwise the conv rule, with rows of A in the role of output pixels."""
    fitting = [nr for nr in range(1, panels + 1)
               if panels % nr == 0 and nr * m + nr + 2 <= registers]
    if fitting:
        return Tiling(max(fitting), (1,), (m,))
    return choose_tiling(panels, 1, m, registers)


@dataclass(frozen=True)
class GemmPlan:
    m: int
    n: int
    k: int
    trans_a: bool
    trans_b: bool
    alpha: float
    beta: float
    has_c: bool
    c_shape: tuple[int, ...]
    activation: str
    activation_params: tuple[float, ...]
    vector_width: int
    tiling: Tiling  # ocn = panels per tile (nr), widths = rows per row tile (mr)
    # bf16: A is bf16 (m, k) and read as (m, k/2) 32-bit words, each two neighbouring k, and
    # B's panels hold bf16 pairs alike (pack_b); k counts those words, every address is the
    # float32 kernel's, and each k step is one vdpbf16ps over two k
    bf16: bool = False
    logical_k: int = 0

    @classmethod
    def create(cls, *, m: int, n: int, k: int, trans_a: bool = False, trans_b: bool = False,
               alpha: float = 1.0, beta: float = 1.0, has_c: bool = False,
               c_shape: tuple[int, ...] | None = None, activation: str = "none",
               activation_params: tuple[float, ...] = (), vector_width: int = 16,
               tiling: Tiling | None = None) -> GemmPlan:
        """`c_shape` defaults to the bias row (n,). `tiling` overrides the tile choice."""
        params = check_activation(activation, activation_params)
        if min(m, n, k) < 1:
            raise ValueError(f"empty GEMM m={m} n={n} k={k}")
        c_shape = tuple(c_shape) if c_shape is not None else (n,)
        if has_c:
            _c_kind(c_shape, m, n)
        panels = -(-n // vector_width)
        tiling = tiling or choose_gemm_tiling(m, panels, vector_registers(vector_width))
        tiling.check(panels, 1, m)
        return cls(m, n, k, trans_a, trans_b, float(alpha), float(beta), has_c, c_shape,
                   activation, params, vector_width, tiling)

    @classmethod
    def create_bf16(cls, *, k: int, trans_a: bool = False, vector_width: int = 16,
                    **gemm: object) -> GemmPlan:
        """The plan of `create` for a bf16 A (AVX512-BF16): 16-lane vectors, A not transposed
        and an even k (a pair never straddles two rows of A)."""
        if vector_width != 16 or trans_a or k % 2:
            raise ValueError(f"the bf16 GEMM needs 16 lanes, A not transposed and an even k, "
                             f"got vector_width={vector_width} trans_a={trans_a} k={k}")
        words = cls.create(k=k // 2, vector_width=vector_width, **gemm)
        return dataclasses.replace(words, bf16=True, logical_k=k)

    @property
    def panels(self) -> int:
        return -(-self.n // self.vector_width)

    @property
    def groups(self) -> int:
        return self.panels // self.tiling.ocn

    @property
    def row_tiles(self) -> int:
        return len(self.tiling.widths)

    @property
    def num_tasks(self) -> int:
        return self.groups * self.row_tiles

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * (self.logical_k if self.bf16 else self.k)

    def pack_b(self, b: np.ndarray) -> np.ndarray:
        """op(B) (k, n) -> panels (NP, k, vw), zero-padded, float32 C-contiguous."""
        op_b = b.T if self.trans_b else b
        k = self.logical_k if self.bf16 else self.k
        if op_b.shape != (k, self.n):
            raise ValueError(f"GEMM B shape {b.shape} (trans_b={self.trans_b}) does not give "
                             f"({k}, {self.n})")
        vw = self.vector_width
        if self.bf16:  # (NP, k/2, vw) words, word [p, j] the pair (B[2p, j], B[2p + 1, j])
            padded = np.zeros((k, self.panels * vw), dtype=np.float32)
            padded[:, :self.n] = op_b
            return pair_words(padded.reshape(self.k, 2, self.panels, vw).transpose(2, 0, 3, 1))
        padded = np.zeros((self.k, self.panels * vw), dtype=np.float32)
        padded[:, :self.n] = op_b
        return np.ascontiguousarray(padded.reshape(self.k, self.panels, vw).transpose(1, 0, 2))

    # Emission -------------------------------------------------------------------------------

    def emit(self, module: ir.Module, name: str) -> ir.Function:
        """Emit `void name(float* a, float* b_packed, float* c_or_null, float* y,
        i64 task_begin, i64 task_end)`."""
        vw, nr, widths = self.vector_width, self.tiling.ocn, self.tiling.widths
        tail = self.n % vw != 0
        kernels = {(mr, last): self._emit_tile_kernel(module, f"{name}.tile{mr}{'t' * last}",
                                                      mr, last)
                   for mr in dict.fromkeys(widths) for last in ([False, True] if tail else [False])}
        fn = define_kernel(module, name, 4, 2, KERNEL_ARGS, may_alias=("c", "y"))
        a, bp, c, y, begin, end = fn.args
        starts = [sum(widths[:i]) for i in range(len(widths))]
        table = const_table(module, f"{name}.row_starts", starts)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        with for_range(b, begin, end, name="task") as task:
            group, row_tile = udiv_rem(b, task, self.row_tiles, "task")
            m0 = load_table(b, table, row_tile, "m0")
            n0 = linear(b, "n0", (group, nr * vw))
            a_tile = gep(b, a, m0, "a_tile", scale=1 if self.trans_a else self.k)
            b_group = gep(b, bp, group, "b_group", scale=nr * self.k * vw)
            y_tile = gep(b, y, linear(b, "y_off", (m0, self.n), (n0, 1)), "y_tile")
            c_tile = gep(b, c, self._c_offset(b, m0, n0), "c_tile")

            def call(mr: int, last: bool) -> None:
                b.call(kernels[(mr, last)], [a_tile, b_group, c_tile, y_tile])

            cases, first = [], 0
            for mr in dict.fromkeys(widths):
                first += widths.count(mr)
                is_mr = b.icmp_unsigned("<", row_tile, i64(first), name=f"is_mr{mr}")
                if tail:
                    is_last = b.icmp_unsigned("==", group, i64(self.groups - 1), name="is_last")
                    cases.append((b.and_(is_mr, is_last, name=f"mr{mr}_last"),
                                  lambda mr=mr: call(mr, True)))
                cases.append((is_mr, lambda mr=mr: call(mr, False)))
            cases[-1] = (None, cases[-1][1])
            emit_branches(b, cases)
        b.ret_void()
        return fn

    def _c_offset(self, b: ir.IRBuilder, m0: ir.Value, n0: ir.Value) -> ir.Value | int:
        """Offset of the tile's first C element (C read at constant offsets from there)."""
        kind = _c_kind(self.c_shape, self.m, self.n) if self.has_c else "scalar"
        if kind == "row":
            return n0
        if kind == "column":
            return m0
        if kind == "full":
            return linear(b, "c_off", (m0, self.n), (n0, 1))
        return 0

    def _emit_tile_kernel(self, module: ir.Module, name: str, mr: int, last: bool
                          ) -> ir.Function:
        """(mr rows x nr panels) accumulators over the whole k loop, then the epilogue."""
        vw, nr, k = self.vector_width, self.tiling.ocn, self.k
        fn = define_kernel(module, name, 4, 0, TILE_ARGS, internal=True, may_alias=("c", "y"))
        a, bp, c, y = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        accs = {}
        for i in range(mr):
            for v in range(nr):
                accs[i, v] = entry_alloca(b, vec_type(vw), f"acc{i}_{v}")
                b.store(splat(0.0, vw), accs[i, v])

        step = dot_bf16_pairs if self.bf16 else fma
        with for_range(b, 0, k, name="kk") as kk:
            b_k = gep(b, bp, kk, "b_k", scale=vw)
            panel = [load(b, b_k, v * k * vw, vw, f"b{v}") for v in range(nr)]
            for v in range(nr):  # B streams from memory for small m: keep requests in flight
                prefetch(b, b_k, v * k * vw + B_PREFETCH_FLOATS, f"b{v}.pf")
            a_k = gep(b, a, kk, "a_k", scale=self.m if self.trans_a else 1)
            for i in range(mr):
                x = broadcast(b, a_k, i if self.trans_a else i * k, vw, f"a{i}")
                for v in range(nr):
                    acc = b.load(accs[i, v], name=f"acc{i}_{v}.v")
                    b.store(step(b, panel[v], x, acc, f"fma{i}_{v}"), accs[i, v])

        tail_lanes = self.n - (self.panels - 1) * vw
        kind = _c_kind(self.c_shape, self.m, self.n) if self.has_c else None
        for i in range(mr):
            for v in range(nr):
                lanes = tail_lanes if last and v == nr - 1 else vw
                value = b.load(accs[i, v], name=f"sum{i}_{v}")
                if self.alpha != 1.0:
                    value = b.fmul(value, splat(self.alpha, vw), name=f"alpha{i}_{v}")
                if kind is not None and self.beta != 0.0:
                    cv = self._load_c(b, c, kind, i, v, lanes, f"c{i}_{v}")
                    if self.beta != 1.0:
                        cv = b.fmul(cv, splat(self.beta, vw), name=f"beta{i}_{v}")
                    value = b.fadd(value, cv, name=f"plus_c{i}_{v}")
                value = apply_activation(b, value, self.activation, self.activation_params,
                                         f"y{i}_{v}")
                store_partial(b, value, y, i * self.n + v * vw, lanes, f"y{i}_{v}")
        b.ret_void()
        return fn

    def _load_c(self, b: ir.IRBuilder, c: ir.Value, kind: str, i: int, v: int, lanes: int,
                name: str) -> ir.Value:
        vw = self.vector_width
        if kind == "scalar":
            return broadcast(b, c, 0, vw, name)
        if kind == "column":
            return broadcast(b, c, i, vw, name)
        offset = v * vw + (i * self.n if kind == "full" else 0)
        return load_partial(b, c, offset, vw, lanes, name)
