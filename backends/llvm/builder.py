"""The IR-builder helpers every llvm emitter and kernel uses (emit/*, kernels/*, threads.py).

Everything here emits into a caller-owned `ir.IRBuilder`, and every emitted value gets a name:
types and constants, functions and loops (`for_range`, `vec_loop`), memory (`gep`, `load`,
`store` and their partial / masked / broadcast forms), arithmetic (`fma`, `intrinsic`, `vexp`),
index math, and the activations of graphcnn.ops.activation through `LLVMVectorMath`, the llvm
side of the table's backend-neutral vector-math interface.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from llvmlite import ir

from graphcnn.ops.activation import EPILOGUE_ACTIVATIONS, get_activation

F32 = ir.FloatType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32P = F32.as_pointer()
I8P = ir.IntType(8).as_pointer()
VOID = ir.VoidType()


class BFloat16Type(ir.Type):
    """LLVM's `bfloat` (llvmlite's IR layer has no such type): bf16 tensors in memory, the
    operands of vdpbf16ps, and `fptrunc` from float (vcvtneps2bf16 with AVX512-BF16)."""

    def _to_string(self) -> str:
        return "bfloat"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BFloat16Type)

    def __hash__(self) -> int:
        return hash("bfloat")


BF16 = BFloat16Type()


def vec_type(width: int) -> ir.VectorType:
    return ir.VectorType(F32, width)


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def as_i64(x: ir.Value | int) -> ir.Value:
    return i64(x) if isinstance(x, int) else x


def splat(value: float, width: int) -> ir.Constant:
    """<width x float> of `value`. Memoised: constants are immutable and module-independent,
    and building one wraps every lane (a big model asks for thousands)."""
    return _splat(float(value).hex(), width)  # hex: -0.0 and 0.0 are different constants


@functools.lru_cache(maxsize=1024)
def _splat(value_hex: str, width: int) -> ir.Constant:
    return ir.Constant(vec_type(width), [float.fromhex(value_hex)] * width)


def check_activation(activation: str, params: Sequence[float]) -> tuple[float, ...]:
    """Validate an epilogue activation name and its parameters; return the parameters."""
    if activation not in EPILOGUE_ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of "
                         f"{sorted(EPILOGUE_ACTIVATIONS)}")
    params = tuple(float(p) for p in params)
    want = EPILOGUE_ACTIVATIONS[activation][1]
    if len(params) != want:
        raise ValueError(f"activation {activation!r} takes {want} parameters, got {params}")
    return params


# ----------------------------------------------------------------------------------------------
# Functions and control flow


def define_kernel(module: ir.Module, name: str, n_ptrs: int, n_ints: int,
                  arg_names: Sequence[str], internal: bool = False,
                  may_alias: Sequence[str] = (), trailing: Sequence[ir.Type] = ()
                  ) -> ir.Function:
    """Declare `void name(float* x n_ptrs, i64 x n_ints, *trailing)`; float pointers are noalias
    unless listed in `may_alias` (e.g. a residual input that the memory planner may place on
    the output)."""
    fnty = ir.FunctionType(VOID, [F32P] * n_ptrs + [I64] * n_ints + list(trailing))
    fn = ir.Function(module, fnty, name)
    fn.attributes.add("nounwind")
    if internal:
        fn.linkage = "internal"
    for arg, arg_name in zip(fn.args, arg_names, strict=True):
        arg.name = arg_name
        if arg.type == F32P and arg_name not in may_alias:
            arg.add_attribute("noalias")
    return fn


def linear(b: ir.IRBuilder, name: str, *terms: tuple[ir.Value, int], const: int = 0
           ) -> ir.Value:
    """sum(x * c for x, c in terms) + const in i64; coefficients 0 and 1 fold away, and every
    emitted value is named `name.*` (the last one `name`)."""
    parts = [x if c == 1 else b.mul(x, i64(c), name=f"{name}.m{i}")
             for i, (x, c) in enumerate(terms) if c != 0]
    if const:
        parts.append(i64(const))
    if not parts:
        return i64(0)
    total = parts[0]
    for i, part in enumerate(parts[1:], 1):
        total = b.add(total, part, name=name if i == len(parts) - 1 else f"{name}.s{i}")
    return total


def udiv_rem(b: ir.IRBuilder, x: ir.Value, divisor: int, name: str) -> tuple[ir.Value, ir.Value]:
    """(x // divisor, x % divisor) for non-negative i64 x and a constant divisor."""
    quotient = b.udiv(x, i64(divisor), name=f"{name}.q")
    return quotient, b.urem(x, i64(divisor), name=f"{name}.r")


@contextmanager
def for_range(b: ir.IRBuilder, start: ir.Value | int, stop: ir.Value | int, step: int = 1,
              name: str = "i") -> Iterator[ir.Value]:
    """`for (i = start; i < stop; i += step)` over i64 (signed compare); yields the induction
    variable.

    A loop of constant bounds with one trip is no loop: the body is emitted once with `i` the
    constant `start` (a one-channel block's channel loop in the stem conv)."""
    if isinstance(start, int) and isinstance(stop, int) and start < stop <= start + step:
        yield i64(start)
        return
    start = i64(start) if isinstance(start, int) else start
    stop = i64(stop) if isinstance(stop, int) else stop
    preheader = b.block
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    end = b.append_basic_block(f"{name}.end")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, preheader)
    b.cbranch(b.icmp_signed("<", index, stop, name=f"{name}.cond"), body, end)
    b.position_at_end(body)
    yield index
    index.add_incoming(b.add(index, i64(step), name=f"{name}.next"), b.block)
    b.branch(header)
    b.position_at_end(end)


def entry_alloca(b: ir.IRBuilder, ty: ir.Type, name: str) -> ir.AllocaInstr:
    """An alloca in the entry block, so SROA/mem2reg promote it to SSA (accumulators)."""
    with b.goto_entry_block():
        slot = b.alloca(ty, name=name)
    return slot


def const_table(module: ir.Module, name: str, values: Sequence[int]) -> ir.GlobalVariable:
    """An internal constant i64 array (e.g. per-row kernel-tap ranges)."""
    ty = ir.ArrayType(I64, len(values))
    table = ir.GlobalVariable(module, ty, name)
    table.linkage = "internal"
    table.global_constant = True
    table.initializer = ir.Constant(ty, [int(v) for v in values])
    return table


def zero_buffer(module: ir.Module, floats: int) -> ir.Value:
    """float* to an internal constant array of zeros: what border taps read instead of input."""
    name = f"zeros.{floats}"
    if name not in module.globals:
        ty = ir.ArrayType(F32, floats)
        table = ir.GlobalVariable(module, ty, name)
        table.linkage = "internal"
        table.global_constant = True
        table.initializer = ir.Constant(ty, [0.0] * floats)
        table.align = 64
    return module.globals[name].bitcast(F32P)


def load_table(b: ir.IRBuilder, table: ir.GlobalVariable, index: ir.Value, name: str) -> ir.Value:
    return b.load(b.gep(table, [i64(0), index], inbounds=True, name=f"{name}.ptr"), name=name)


def vec_loop(b: ir.IRBuilder, start: ir.Value | int, stop: ir.Value | int, width: int,
             body: Callable[[ir.Value, int], None], name: str = "v") -> None:
    """Run `body(index, w)` with w = width over the largest multiple of `width` from start, then
    with w = 1 over the tail: the vector main loop plus its scalar tail."""
    if isinstance(start, int) and isinstance(stop, int):
        main_end: ir.Value | int = start + (stop - start) // width * width
        if main_end > start:
            with for_range(b, start, main_end, step=width, name=f"{name}.vec") as i:
                body(i, width)
        if stop > main_end:
            with for_range(b, main_end, stop, name=f"{name}.tail") as i:
                body(i, 1)
        return
    start, stop = as_i64(start), as_i64(stop)
    count = b.sub(stop, start, name=f"{name}.count")
    main = b.sub(count, b.urem(count, i64(width), name=f"{name}.rem"), name=f"{name}.main")
    main_end = b.add(start, main, name=f"{name}.mainend")
    with for_range(b, start, main_end, step=width, name=f"{name}.vec") as i:
        body(i, width)
    with for_range(b, main_end, stop, name=f"{name}.tail") as i:
        body(i, 1)


# ----------------------------------------------------------------------------------------------
# Memory


def gep(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, name: str, scale: int = 1
        ) -> ir.Value:
    """float* + offset * scale (elements). Not `inbounds`: border tiles form base pointers
    outside the tensor (only in-image elements are ever loaded through them)."""
    if isinstance(offset, int):
        offset *= scale
        if offset == 0:
            return ptr
        offset = i64(offset)
    elif scale != 1:
        offset = b.mul(offset, i64(scale), name=f"{name}.off")
    return b.gep(ptr, [offset], name=name)


def load(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, width: int, name: str
         ) -> ir.Value:
    """`width` consecutive floats at ptr + offset as a <width x float>; unaligned-safe (callers
    only guarantee float alignment)."""
    p = gep(b, ptr, offset, f"{name}.p")
    return b.load(b.bitcast(p, vec_type(width).as_pointer(), name=f"{name}.vp"), name=name,
                  align=4)


def store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, offset: ir.Value | int,
          name: str) -> None:
    p = gep(b, ptr, offset, f"{name}.p")
    b.store(value, b.bitcast(p, value.type.as_pointer(), name=f"{name}.vp"), align=4)


def store_bf16(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, offset: ir.Value | int,
               name: str) -> None:
    """`value` (<n x float>) rounded to bf16 (nearest even, vcvtneps2bf16) and stored at
    element `offset` of the bf16 tensor `ptr` points at, whatever its pointer type."""
    elems = b.bitcast(ptr, BF16.as_pointer(), name=f"{name}.bf")
    rounded = b.fptrunc(value, ir.VectorType(BF16, value.type.count), name=f"{name}.r")
    store(b, rounded, elems, offset, name)


def as_words(b: ir.IRBuilder, ptr: ir.Value, name: str) -> ir.Value:
    """`ptr` as float*: the kernels read a bf16 tensor as 32-bit words (pairs of elements)."""
    return ptr if ptr.type == F32P else b.bitcast(ptr, F32P, name=name)


def load_scalar(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, name: str) -> ir.Value:
    return b.load(gep(b, ptr, offset, f"{name}.p"), name=name, align=4)


def broadcast(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, width: int,
              name: str) -> ir.Value:
    """Load one float and splat it; x86 folds this into an embedded-broadcast FMA operand."""
    return splat_value(b, load_scalar(b, ptr, offset, f"{name}.s"), width, name)


def splat_value(b: ir.IRBuilder, scalar: ir.Value, width: int, name: str) -> ir.Value:
    """<width x float> of a runtime float (width 1: the one-lane vector)."""
    one = b.insert_element(ir.Constant(vec_type(1), ir.Undefined), scalar, ir.Constant(I32, 0),
                           name=f"{name}.ins")
    if width == 1:
        return one
    return b.shuffle_vector(one, ir.Constant(vec_type(1), ir.Undefined),
                            ir.Constant(ir.VectorType(I32, width), [0] * width), name=name)


def prefetch(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, name: str) -> None:
    """Software prefetch (read, all cache levels) of ptr + offset floats; never faults."""
    i8p = ir.IntType(8).as_pointer()
    fn = b.module.globals.get("llvm.prefetch.p0i8") or ir.Function(
        b.module, ir.FunctionType(VOID, [i8p, I32, I32, I32]), "llvm.prefetch.p0i8")
    address = b.bitcast(gep(b, ptr, offset, f"{name}.p"), i8p, name=name)
    b.call(fn, [address, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])


def load_partial(b: ir.IRBuilder, ptr: ir.Value, offset: int, width: int, lanes: int,
                 name: str) -> ir.Value:
    """Load the first `lanes` floats into a vector (rest zero) without touching memory past them."""
    if lanes == width:
        return load(b, ptr, offset, width, name)
    value = ir.Constant(vec_type(width), [0.0] * width)
    for lane in range(lanes):
        scalar = b.load(gep(b, ptr, offset + lane, f"{name}.p{lane}"),
                        name=f"{name}.s{lane}", align=4)
        value = b.insert_element(value, scalar, ir.Constant(I32, lane), name=f"{name}.i{lane}")
    return value


def load_masked(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int,
                mask: Sequence[bool], name: str) -> ir.Value:
    """Vector load of the lanes where `mask` is true, zeros elsewhere; masked-off lanes touch
    no memory (llvm.masked.load: an AVX-512 k-mask load), so `ptr + offset` may point before
    or past a buffer as long as every lane kept is inside it."""
    width = len(mask)
    if all(mask):
        return load(b, ptr, offset, width, name)
    if not any(mask):
        return splat(0.0, width)
    ty = vec_type(width)
    fname = f"llvm.masked.load.v{width}f32.p0"
    fn = b.module.globals.get(fname) or ir.Function(
        b.module, ir.FunctionType(ty, [ty.as_pointer(), I32, ir.VectorType(ir.IntType(1), width),
                                       ty]), fname)
    p = b.bitcast(gep(b, ptr, offset, f"{name}.p"), ty.as_pointer(), name=f"{name}.vp")
    return b.call(fn, [p, ir.Constant(I32, 4), ir.Constant(ir.VectorType(ir.IntType(1), width),
                                                               list(mask)), splat(0.0, width)],
                  name=name)


def store_partial(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, offset: ir.Value | int,
                  lanes: int, name: str) -> None:
    """Store the first `lanes` lanes of a vector (row-major tails, e.g. GEMM's last panel)."""
    width = value.type.count
    if lanes == width:
        store(b, value, ptr, offset, name)
        return
    base = gep(b, ptr, offset, f"{name}.base")
    for lane in range(lanes):
        scalar = b.extract_element(value, ir.Constant(I32, lane), name=f"{name}.e{lane}")
        b.store(scalar, gep(b, base, lane, f"{name}.p{lane}"), align=4)


# ----------------------------------------------------------------------------------------------
# Arithmetic


def _declare(module: ir.Module, base: str, ty: ir.Type, n_args: int) -> ir.Function:
    """Declare (once) an overloaded float intrinsic such as llvm.fma.v16f32."""
    suffix = f"v{ty.count}f32" if isinstance(ty, ir.VectorType) else "f32"
    name = f"{base}.{suffix}"
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ty, [ty] * n_args), name)


def intrinsic(b: ir.IRBuilder, base: str, args: Sequence[ir.Value], name: str) -> ir.Value:
    """Call an overloaded float intrinsic (llvm.sqrt, llvm.pow, llvm.maxnum, ...)."""
    return b.call(_declare(b.module, base, args[0].type, len(args)), list(args), name=name)


def fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, acc: ir.Value, name: str) -> ir.Value:
    """x * y + acc: one rounding (vfmadd231ps) where the CPU has FMA, else a multiply and an
    add (llvm.fmuladd): llvm.fma on a CPU without FMA is a libm call per lane, ~100x slower."""
    return intrinsic(b, "llvm.fmuladd", [x, y, acc], name)


def dot_bf16_pairs(b: ir.IRBuilder, x: ir.Value, y: ir.Value, acc: ir.Value, name: str
                   ) -> ir.Value:
    """acc[i] + x[2i] * y[2i] + x[2i+1] * y[2i+1] for <16 x float> acc and x, y holding 16
    pairs of bf16 each as <16 x float> bit patterns (one vdpbf16ps, fp32 accumulation)."""
    pairs = ir.VectorType(BF16, 32)
    fn = b.module.declare_intrinsic("llvm.x86.avx512bf16.dpbf16ps.512",
                                    fnty=ir.FunctionType(acc.type, [acc.type, pairs, pairs]))
    return b.call(fn, [acc, b.bitcast(x, pairs, name=f"{name}.x"),
                       b.bitcast(y, pairs, name=f"{name}.y")], name=name)


def fmax(b: ir.IRBuilder, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    """max propagating the larger value like numpy's maximum on non-NaN data (the pools')."""
    return b.select(b.fcmp_ordered(">=", x, y, name=f"{name}.ge"), x, y, name=name)


def vmax(b: ir.IRBuilder, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    return intrinsic(b, "llvm.maxnum", [x, y], name)


def vmin(b: ir.IRBuilder, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    return intrinsic(b, "llvm.minnum", [x, y], name)


def vexp(b: ir.IRBuilder, x: ir.Value, name: str) -> ir.Value:
    """exp(x) for float vectors, ~1 ulp: 2^n * p(r), r = x - n*ln2 (Cephes expf). 2^n is
    applied as two halves, so results near overflow and the subnormal ones are right; beyond
    float range exp is inf or 0 as numpy's, NaN stays NaN."""
    width, x0 = x.type.count, x
    x = vmin(b, vmax(b, x, splat(-103.97208, width), f"{name}.lo"), splat(88.72283, width),
             f"{name}.cl")
    n = intrinsic(b, "llvm.rint", [b.fmul(x, splat(1 / math.log(2), width),
                                            name=f"{name}.xl2")], f"{name}.n")
    # Two-step Cody-Waite reduction keeps r accurate for |n| up to 150.
    r = fma(b, n, splat(-0.693359375, width), x, f"{name}.r0")
    r = fma(b, n, splat(2.12194440e-4, width), r, f"{name}.r")
    coeffs = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
              1.6666665459e-1, 5.0000001201e-1)
    p = splat(coeffs[0], width)
    for i, c in enumerate(coeffs[1:]):
        p = fma(b, p, r, splat(c, width), f"{name}.p{i}")
    rr = b.fmul(r, r, name=f"{name}.rr")
    p = fma(b, p, rr, b.fadd(r, splat(1.0, width), name=f"{name}.r1"), f"{name}.poly")
    ivec = ir.VectorType(I32, width)
    ni = b.fptosi(n, ivec, name=f"{name}.ni")
    half = b.ashr(ni, ir.Constant(ivec, [1] * width), name=f"{name}.nh")
    for k, part in enumerate((half, b.sub(ni, half, name=f"{name}.nr"))):
        bits = b.shl(b.add(part, ir.Constant(ivec, [127] * width), name=f"{name}.biased{k}"),
                     ir.Constant(ivec, [23] * width), name=f"{name}.bits{k}")
        p = b.fmul(p, b.bitcast(bits, x.type, name=f"{name}.pow2_{k}"), name=f"{name}.y{k}")
    y = b.select(b.fcmp_ordered(">", x0, splat(88.72283, width), name=f"{name}.big"),
                 splat(math.inf, width), p, name=f"{name}.ov")
    y = b.select(b.fcmp_ordered("<", x0, splat(-103.97208, width), name=f"{name}.tiny"),
                 splat(0.0, width), y, name=f"{name}.un")
    return b.select(b.fcmp_unordered("uno", x0, x0, name=f"{name}.nan"), x0, y, name=name)


def _poly(b: ir.IRBuilder, x: ir.Value, coeffs: Sequence[float], name: str) -> ir.Value:
    """coeffs[0] * x^(n-1) + ... + coeffs[-1], Horner with FMAs."""
    p = splat(coeffs[0], x.type.count)
    for i, c in enumerate(coeffs[1:]):
        p = fma(b, p, x, splat(c, x.type.count), f"{name}{i}")
    return p


def _ivec(width: int, value: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I32, width), [value] * width)


def vlog(b: ir.IRBuilder, x: ir.Value, name: str) -> ir.Value:
    """log(x), ~1 ulp (Cephes logf): x = m * 2^e with m in [sqrt(1/2), sqrt(2)), a degree-9
    polynomial in m - 1; subnormals scaled up first; log(0) = -inf, log(<0) = NaN."""
    w = x.type.count
    ivec = ir.VectorType(I32, w)
    small = b.fcmp_ordered("<", x, splat(1.17549435e-38, w), name=f"{name}.sub")
    xs = b.select(small, b.fmul(x, splat(8388608.0, w), name=f"{name}.scaled"), x,
                  name=f"{name}.xs")
    bits = b.bitcast(xs, ivec, name=f"{name}.bits")
    biased = b.and_(b.lshr(bits, _ivec(w, 23), name=f"{name}.eb"), _ivec(w, 255),
                    name=f"{name}.eb8")
    e = b.sitofp(b.sub(biased, _ivec(w, 126), name=f"{name}.ei"), x.type, name=f"{name}.e0")
    e = b.fadd(e, b.select(small, splat(-23.0, w), splat(0.0, w), name=f"{name}.eoff"),
               name=f"{name}.e1")
    m = b.bitcast(b.or_(b.and_(bits, _ivec(w, 0x007FFFFF), name=f"{name}.mb"),
                        _ivec(w, 0x3F000000), name=f"{name}.mh"), x.type, name=f"{name}.m0")
    lt = b.fcmp_ordered("<", m, splat(0.707106781186547524, w), name=f"{name}.lt")
    e = b.fsub(e, b.select(lt, splat(1.0, w), splat(0.0, w), name=f"{name}.de"),
               name=f"{name}.e")
    m = b.fsub(b.select(lt, b.fadd(m, m, name=f"{name}.m2"), m, name=f"{name}.m1"),
               splat(1.0, w), name=f"{name}.m")
    z = b.fmul(m, m, name=f"{name}.z")
    p = _poly(b, m, (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                     1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                     3.3333331174e-1), f"{name}.p")
    y = b.fmul(b.fmul(p, m, name=f"{name}.pm"), z, name=f"{name}.pz")
    y = fma(b, e, splat(-2.12194440e-4, w), y, f"{name}.y1")
    y = fma(b, z, splat(-0.5, w), y, f"{name}.y2")
    r = fma(b, e, splat(0.693359375, w), b.fadd(m, y, name=f"{name}.my"), f"{name}.r")
    r = b.select(b.fcmp_ordered("==", x, splat(math.inf, w), name=f"{name}.inf"),
                 splat(math.inf, w), r, name=f"{name}.rinf")
    r = b.select(b.fcmp_ordered("==", x, splat(0.0, w), name=f"{name}.zero"),
                 splat(-math.inf, w), r, name=f"{name}.rzero")
    return b.select(b.fcmp_unordered("<", x, splat(0.0, w), name=f"{name}.neg"),
                    splat(math.nan, w), r, name=name)


def vlog1p(b: ir.IRBuilder, x: ir.Value, name: str) -> ir.Value:
    """log(1 + x), accurate for small x: log(u) * x / (u - 1) with u = 1 + x rounded (the
    quotient corrects u's rounding error)."""
    w = x.type.count
    u = b.fadd(x, splat(1.0, w), name=f"{name}.u")
    d = b.fsub(u, splat(1.0, w), name=f"{name}.d")
    r = b.fmul(vlog(b, u, f"{name}.log"), b.fdiv(x, d, name=f"{name}.q"), name=f"{name}.r")
    r = b.select(b.fcmp_ordered("==", d, splat(0.0, w), name=f"{name}.exact"), x, r,
                 name=f"{name}.r1")
    return b.select(b.fcmp_ordered("==", x, splat(math.inf, w), name=f"{name}.inf"), x, r,
                    name=name)


def vtanh(b: ir.IRBuilder, x: ir.Value, name: str) -> ir.Value:
    """tanh(x), a few ulp (Cephes tanhf): an odd polynomial below |x| = 0.625, else
    1 - 2 / (exp(2|x|) + 1) with x's sign."""
    w = x.type.count
    ax = intrinsic(b, "llvm.fabs", [x], f"{name}.abs")
    s = b.fmul(x, x, name=f"{name}.s")
    p = _poly(b, s, (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
                     -3.33332819422e-1), f"{name}.p")
    ys = fma(b, b.fmul(p, s, name=f"{name}.ps"), x, x, f"{name}.small")
    e = vexp(b, b.fmul(vmin(b, ax, splat(9.0, w), f"{name}.cl"), splat(2.0, w),
                       name=f"{name}.2x"), f"{name}.exp")
    yl = b.fsub(splat(1.0, w), b.fdiv(splat(2.0, w), b.fadd(e, splat(1.0, w), name=f"{name}.e1"),
                                      name=f"{name}.q"), name=f"{name}.big")
    yl = intrinsic(b, "llvm.copysign", [yl, x], f"{name}.signed")
    y = b.select(b.fcmp_ordered("<", ax, splat(0.625, w), name=f"{name}.lt"), ys, yl,
                 name=f"{name}.y")
    return b.select(b.fcmp_unordered("uno", x, x, name=f"{name}.nan"), x, y, name=name)


def verf(b: ir.IRBuilder, x: ir.Value, name: str) -> ir.Value:
    """erf(x), a few ulp: x * p(x^2) / q(x^2) on [-4, 4] (Eigen's float erf), +-1 beyond."""
    w = x.type.count
    xc = vmin(b, vmax(b, x, splat(-4.0, w), f"{name}.lo"), splat(4.0, w), f"{name}.cl")
    z = b.fmul(xc, xc, name=f"{name}.z")
    p = _poly(b, z, (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                     -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                     -1.60960333262415e-02), f"{name}.p")
    q = _poly(b, z, (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                     -7.37332916720468e-03, -1.42647390514189e-02), f"{name}.q")
    # x * (p / q): x * p first would go subnormal for tiny x and lose its digits
    y = b.fmul(xc, b.fdiv(p, q, name=f"{name}.pq"), name=f"{name}.y")
    return b.select(b.fcmp_unordered("uno", x, x, name=f"{name}.nan"), x, y, name=name)


def vpow(b: ir.IRBuilder, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    """x ** y as C's powf: exp(y * log|x|), the sign of x for odd integer y, NaN for a negative
    base with a non-integer exponent, 1 for y == 0 or x == 1."""
    w = x.type.count
    ax = intrinsic(b, "llvm.fabs", [x], f"{name}.abs")
    r = vexp(b, b.fmul(y, vlog(b, ax, f"{name}.log"), name=f"{name}.ylog"), f"{name}.exp")
    yr = intrinsic(b, "llvm.rint", [y], f"{name}.yr")
    is_int = b.fcmp_ordered("==", yr, y, name=f"{name}.int")
    half = b.fmul(y, splat(0.5, w), name=f"{name}.half")
    odd = b.and_(is_int, b.fcmp_ordered("!=", intrinsic(b, "llvm.rint", [half], f"{name}.hr"),
                                        half, name=f"{name}.odd0"), name=f"{name}.odd")
    signed = b.fcmp_ordered("<", intrinsic(b, "llvm.copysign", [splat(1.0, w), x],
                                           f"{name}.sgn"), splat(0.0, w), name=f"{name}.neg")
    r = b.select(b.and_(signed, odd, name=f"{name}.flip"), b.fneg(r, name=f"{name}.nr"), r,
                 name=f"{name}.r1")
    bad = b.and_(b.fcmp_ordered("<", x, splat(0.0, w), name=f"{name}.lt0"),
                 b.not_(is_int, name=f"{name}.frac"), name=f"{name}.bad")
    r = b.select(bad, splat(math.nan, w), r, name=f"{name}.r2")
    one = b.or_(b.fcmp_ordered("==", y, splat(0.0, w), name=f"{name}.y0"),
                b.fcmp_ordered("==", x, splat(1.0, w), name=f"{name}.x1"), name=f"{name}.one")
    return b.select(one, splat(1.0, w), r, name=name)


class LLVMVectorMath:
    """graphcnn.ops.activation.VectorMath on <width x float> values: each call emits the one
    instruction it names (names `name.<op><k>`), so a table expression costs exactly its
    operations."""

    def __init__(self, b: ir.IRBuilder, width: int, name: str):
        self.b, self.width, self.name, self._k = b, width, name, 0

    def _n(self, op: str) -> str:
        self._k += 1
        return f"{self.name}.{op}{self._k}"

    def const(self, value: float) -> ir.Constant:
        return splat(value, self.width)

    def zero(self) -> ir.Constant:
        return splat(0.0, self.width)

    def add(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fadd(x, y, name=self._n("add"))

    def sub(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fsub(x, y, name=self._n("sub"))

    def mul(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fmul(x, y, name=self._n("mul"))

    def div(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fdiv(x, y, name=self._n("div"))

    def neg(self, x: ir.Value) -> ir.Value:
        return self.b.fneg(x, name=self._n("neg"))

    def max(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return vmax(self.b, x, y, self._n("max"))

    def min(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return vmin(self.b, x, y, self._n("min"))

    def exp(self, x: ir.Value) -> ir.Value:
        return vexp(self.b, x, self._n("exp"))

    def gt(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered(">", x, y, name=self._n("gt"))

    def ge(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered(">=", x, y, name=self._n("ge"))

    def select(self, cond: ir.Value, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.select(cond, x, y, name=self._n("sel"))

    def sqrt(self, x: ir.Value) -> ir.Value:
        return intrinsic(self.b, "llvm.sqrt", [x], self._n("sqrt"))

    def abs(self, x: ir.Value) -> ir.Value:
        return intrinsic(self.b, "llvm.fabs", [x], self._n("abs"))

    def floor(self, x: ir.Value) -> ir.Value:
        return intrinsic(self.b, "llvm.floor", [x], self._n("floor"))

    def ceil(self, x: ir.Value) -> ir.Value:
        return intrinsic(self.b, "llvm.ceil", [x], self._n("ceil"))

    def round(self, x: ir.Value) -> ir.Value:
        # the default rounding mode: to nearest, halves to even (np.rint)
        return intrinsic(self.b, "llvm.rint", [x], self._n("round"))

    def log(self, x: ir.Value) -> ir.Value:
        return vlog(self.b, x, self._n("log"))

    def log1p(self, x: ir.Value) -> ir.Value:
        return vlog1p(self.b, x, self._n("log1p"))

    def tanh(self, x: ir.Value) -> ir.Value:
        return vtanh(self.b, x, self._n("tanh"))

    def erf(self, x: ir.Value) -> ir.Value:
        return verf(self.b, x, self._n("erf"))

    def pow(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return vpow(self.b, x, y, self._n("pow"))


def apply_activation(b: ir.IRBuilder, x: ir.Value, activation: str, params: Sequence[float],
                     name: str) -> ir.Value:
    """A fused epilogue or elementwise activation on a float vector: the table's vector
    expression (graphcnn.ops.activation.ACTIVATIONS), numpy semantics as in the op table."""
    if activation == "none":
        return x
    return get_activation(activation).vector(LLVMVectorMath(b, x.type.count, name), x,
                                             tuple(params))


def lane_mask(b: ir.IRBuilder, x: ir.Value, lanes: int, name: str) -> ir.Value:
    """Zero lanes >= `lanes` (padding channels of the last NCHWc block stay exactly zero)."""
    width = x.type.count
    if lanes >= width:
        return x
    keep = ir.Constant(ir.VectorType(ir.IntType(1), width), [i < lanes for i in range(width)])
    return b.select(keep, x, splat(0.0, width), name=name)


# ----------------------------------------------------------------------------------------------
# Reductions and index math


def hsum(b: ir.IRBuilder, v: ir.Value, name: str) -> ir.Value:
    """Horizontal sum of a float vector (pairwise tree)."""
    lanes = [b.extract_element(v, ir.Constant(I32, i), name=f"{name}.e{i}")
             for i in range(v.type.count)]
    while len(lanes) > 1:
        lanes = [b.fadd(lanes[i], lanes[i + 1], name=f"{name}.t") if i + 1 < len(lanes)
                 else lanes[i] for i in range(0, len(lanes), 2)]
    return lanes[0]


def hreduce(b: ir.IRBuilder, v: ir.Value, op: Callable, name: str) -> ir.Value:
    lanes = [b.extract_element(v, ir.Constant(I32, i), name=f"{name}.e{i}")
             for i in range(v.type.count)]
    acc = lanes[0]
    for lane in lanes[1:]:
        acc = op(acc, lane)
    return acc


def decompose(b: ir.IRBuilder, index: ir.Value, dims: Sequence[int], name: str
              ) -> list[ir.Value]:
    """Row-major multi-index of `index` over `dims` (constant sizes)."""
    out: list[ir.Value] = []
    rest = index
    for k in range(len(dims) - 1, 0, -1):
        out.append(b.urem(rest, i64(dims[k]), name=f"{name}{k}"))
        rest = b.udiv(rest, i64(dims[k]), name=f"{name}.q{k}")
    out.append(rest)
    return out[::-1]


def dot_index(b: ir.IRBuilder, idx: Sequence[ir.Value], strides: Sequence[int], name: str
              ) -> ir.Value:
    """sum(idx[k] * strides[k]) in i64; zero strides emit nothing."""
    total: ir.Value | None = None
    for k, (x, s) in enumerate(zip(idx, strides)):
        if not s:
            continue
        term = x if s == 1 else b.mul(x, i64(s), name=f"{name}.m{k}")
        total = term if total is None else b.add(total, term, name=f"{name}.a{k}")
    return total if total is not None else i64(0)


def strides_of(shape: Sequence[int]) -> list[int]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


def prod(xs: Sequence[int]) -> int:
    return math.prod(xs)


def window_index(b: ir.IRBuilder, out: ir.Value, tap: ir.Value, stride: int, dilation: int,
                 pad: int, size: int, name: str) -> tuple[ir.Value, ir.Value]:
    """The input coordinate out*stride + tap*dilation - pad that a window tap reads, and
    whether it lies inside [0, size) (outside it is padding)."""
    idx = b.add(b.mul(out, i64(stride), name=f"{name}.s"),
                b.sub(b.mul(tap, i64(dilation), name=f"{name}.k"), i64(pad), name=f"{name}.p"),
                name=name)
    ok = b.and_(b.icmp_signed(">=", idx, i64(0), name=f"{name}.ge"),
                b.icmp_signed("<", idx, i64(size), name=f"{name}.lt"), name=f"{name}.ok")
    return idx, ok
