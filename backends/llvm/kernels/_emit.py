"""Small llvmlite helpers shared by the fast kernels (conv2d_nchwc, depthwise, gemm).

Everything here emits into a caller-owned `ir.IRBuilder`; every emitted value gets a name.
The small JIT harness at the bottom (`JitModule`) is what the kernel tests and benchmarks
use; the backend proper has its own runtime.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import llvmlite.binding as llvm
from llvmlite import ir

F32 = ir.FloatType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32P = F32.as_pointer()
VOID = ir.VoidType()

# Fused epilogue activations -> number of parameters (leaky_relu: alpha; clip: min, max).
ACTIVATIONS = {"none": 0, "relu": 0, "leaky_relu": 1, "clip": 2, "sigmoid": 0}


def vec_type(width: int) -> ir.VectorType:
    return ir.VectorType(F32, width)


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def splat(value: float, width: int) -> ir.Constant:
    """<width x float> of `value`. Memoised (constants are immutable and module-independent):
    building one wraps every lane, ~60 us, and a ResNet-50 lowering asks for ~3500."""
    return _splat(float(value).hex(), width)  # hex: -0.0 and 0.0 are different constants


@functools.lru_cache(maxsize=1024)
def _splat(value_hex: str, width: int) -> ir.Constant:
    return ir.Constant(vec_type(width), [float.fromhex(value_hex)] * width)


def check_activation(activation: str, params: Sequence[float]) -> tuple[float, ...]:
    """Validate an activation name and its parameters; return the parameters as a tuple."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of "
                         f"{sorted(ACTIVATIONS)}")
    params = tuple(float(p) for p in params)
    if len(params) != ACTIVATIONS[activation]:
        raise ValueError(f"activation {activation!r} takes {ACTIVATIONS[activation]} "
                         f"parameters, got {params}")
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
    """`for (i = start; i < stop; i += step)` over i64; yields the induction variable.

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


# ----------------------------------------------------------------------------------------------
# Memory


def offset_ptr(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, name: str,
               scale: int = 1) -> ir.Value:
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


def load_vec(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, width: int,
             name: str) -> ir.Value:
    """Unaligned-safe vector load (callers only guarantee float alignment)."""
    p = offset_ptr(b, ptr, offset, f"{name}.p")
    return b.load(b.bitcast(p, vec_type(width).as_pointer(), name=f"{name}.vp"), name=name,
                  align=4)


def store_vec(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, offset: ir.Value | int,
              name: str) -> None:
    p = offset_ptr(b, ptr, offset, f"{name}.p")
    b.store(value, b.bitcast(p, value.type.as_pointer(), name=f"{name}.vp"), align=4)


def broadcast(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, width: int,
              name: str) -> ir.Value:
    """Load one float and splat it; x86 folds this into an embedded-broadcast FMA operand."""
    scalar = b.load(offset_ptr(b, ptr, offset, f"{name}.p"), name=f"{name}.s", align=4)
    return splat_value(b, scalar, width, name)


def splat_value(b: ir.IRBuilder, scalar: ir.Value, width: int, name: str) -> ir.Value:
    one = b.insert_element(ir.Constant(vec_type(1), ir.Undefined), scalar, ir.Constant(I32, 0),
                           name=f"{name}.ins")
    return b.shuffle_vector(one, ir.Constant(vec_type(1), ir.Undefined),
                            ir.Constant(ir.VectorType(I32, width), [0] * width), name=name)


def prefetch(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value | int, name: str) -> None:
    """Software prefetch (read, all cache levels) of ptr + offset floats; never faults."""
    i8p = ir.IntType(8).as_pointer()
    fn = b.module.globals.get("llvm.prefetch.p0i8") or ir.Function(
        b.module, ir.FunctionType(VOID, [i8p, I32, I32, I32]), "llvm.prefetch.p0i8")
    address = b.bitcast(offset_ptr(b, ptr, offset, f"{name}.p"), i8p, name=name)
    b.call(fn, [address, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])


def load_partial(b: ir.IRBuilder, ptr: ir.Value, offset: int, width: int, lanes: int,
                 name: str) -> ir.Value:
    """Load the first `lanes` floats into a vector (rest zero) without touching memory past them."""
    if lanes == width:
        return load_vec(b, ptr, offset, width, name)
    value = ir.Constant(vec_type(width), [0.0] * width)
    for lane in range(lanes):
        scalar = b.load(offset_ptr(b, ptr, offset + lane, f"{name}.p{lane}"),
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
        return load_vec(b, ptr, offset, width, name)
    if not any(mask):
        return splat(0.0, width)
    ty = vec_type(width)
    fname = f"llvm.masked.load.v{width}f32.p0"
    fn = b.module.globals.get(fname) or ir.Function(
        b.module, ir.FunctionType(ty, [ty.as_pointer(), I32, ir.VectorType(ir.IntType(1), width),
                                       ty]), fname)
    p = b.bitcast(offset_ptr(b, ptr, offset, f"{name}.p"), ty.as_pointer(), name=f"{name}.vp")
    return b.call(fn, [p, ir.Constant(I32, 4), ir.Constant(ir.VectorType(ir.IntType(1), width),
                                                               list(mask)), splat(0.0, width)],
                  name=name)


def store_partial(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, offset: ir.Value | int,
                  lanes: int, name: str) -> None:
    """Store the first `lanes` lanes of a vector (row-major tails, e.g. GEMM's last panel)."""
    width = value.type.count
    if lanes == width:
        store_vec(b, value, ptr, offset, name)
        return
    base = offset_ptr(b, ptr, offset, f"{name}.base")
    for lane in range(lanes):
        scalar = b.extract_element(value, ir.Constant(I32, lane), name=f"{name}.e{lane}")
        b.store(scalar, offset_ptr(b, base, lane, f"{name}.p{lane}"), align=4)


# ----------------------------------------------------------------------------------------------
# Arithmetic


def _intrinsic(module: ir.Module, base: str, ty: ir.Type, n_args: int) -> ir.Function:
    """Declare (once) an overloaded float intrinsic such as llvm.fma.v16f32."""
    suffix = f"v{ty.count}f32" if isinstance(ty, ir.VectorType) else "f32"
    name = f"{base}.{suffix}"
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ty, [ty] * n_args), name)


def fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, acc: ir.Value, name: str) -> ir.Value:
    """x * y + acc, one rounding (llvm.fma.vNf32 -> vfmadd231ps)."""
    return b.call(_intrinsic(b.module, "llvm.fma", x.type, 3), [x, y, acc], name=name)


def _unary(b: ir.IRBuilder, intrinsic: str, x: ir.Value, name: str) -> ir.Value:
    return b.call(_intrinsic(b.module, intrinsic, x.type, 1), [x], name=name)


def _binary(b: ir.IRBuilder, intrinsic: str, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    return b.call(_intrinsic(b.module, intrinsic, x.type, 2), [x, y], name=name)


def fmax(b: ir.IRBuilder, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    """max propagating the larger value like numpy's maximum on non-NaN data (the pools')."""
    return b.select(b.fcmp_ordered(">=", x, y, name=f"{name}.ge"), x, y, name=name)


def vmax(b: ir.IRBuilder, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    return _binary(b, "llvm.maxnum", x, y, name)


def vmin(b: ir.IRBuilder, x: ir.Value, y: ir.Value, name: str) -> ir.Value:
    return _binary(b, "llvm.minnum", x, y, name)


def vexp(b: ir.IRBuilder, x: ir.Value, name: str) -> ir.Value:
    """exp(x) for float vectors, ~1 ulp on [-87, 88]: 2^n * p(r), r = x - n*ln2 (Cephes expf)."""
    width = x.type.count
    x = vmin(b, vmax(b, x, splat(-87.0, width), f"{name}.lo"), splat(88.0, width), f"{name}.cl")
    n = _unary(b, "llvm.rint", b.fmul(x, splat(1 / math.log(2), width), name=f"{name}.xl2"),
               f"{name}.n")
    # Two-step Cody-Waite reduction keeps r accurate for |n| up to 127.
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
    bits = b.shl(b.add(b.fptosi(n, ivec, name=f"{name}.ni"), ir.Constant(ivec, [127] * width),
                       name=f"{name}.biased"),
                 ir.Constant(ivec, [23] * width), name=f"{name}.bits")
    return b.fmul(p, b.bitcast(bits, x.type, name=f"{name}.pow2"), name=name)


def apply_activation(b: ir.IRBuilder, x: ir.Value, activation: str, params: Sequence[float],
                     name: str) -> ir.Value:
    """The fused epilogue activations; numpy semantics as in the op table."""
    width = x.type.count
    if activation == "none":
        return x
    if activation == "relu":
        return vmax(b, x, splat(0.0, width), name)
    if activation == "leaky_relu":
        scaled = b.fmul(x, splat(params[0], width), name=f"{name}.neg")
        positive = b.fcmp_ordered(">", x, splat(0.0, width), name=f"{name}.pos")
        return b.select(positive, x, scaled, name=name)
    if activation == "clip":
        low = vmax(b, x, splat(params[0], width), f"{name}.lo")
        return vmin(b, low, splat(params[1], width), name)
    if activation == "sigmoid":
        e = vexp(b, b.fneg(x, name=f"{name}.negx"), f"{name}.exp")
        return b.fdiv(splat(1.0, width), b.fadd(e, splat(1.0, width), name=f"{name}.den"),
                      name=name)
    raise ValueError(f"unknown activation {activation!r}")


def lane_mask(b: ir.IRBuilder, x: ir.Value, lanes: int, name: str) -> ir.Value:
    """Zero lanes >= `lanes` (padding channels of the last NCHWc block stay exactly zero)."""
    width = x.type.count
    if lanes >= width:
        return x
    keep = ir.Constant(ir.VectorType(ir.IntType(1), width), [i < lanes for i in range(width)])
    return b.select(keep, x, splat(0.0, width), name=name)


# ----------------------------------------------------------------------------------------------
# Host target and a minimal JIT (tests, benchmarks)


def host_target_machine(opt: int = 3) -> llvm.TargetMachine:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=opt, codemodel="jitdefault", jit=True)


def host_vector_width() -> int:
    """Floats per vector register on this CPU: 16 (AVX-512), 8 (AVX/AVX2) or 4 (SSE)."""
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 16
    if features.get("avx2") or features.get("avx"):
        return 8
    return 4


def new_module(name: str, tm: llvm.TargetMachine | None = None) -> ir.Module:
    module = ir.Module(name=name)
    tm = tm or host_target_machine()
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    return module


# Optimisation pipelines, by name (new pass manager).
# - "lean": SROA (the accumulator allocas become SSA registers), loop rotation, instcombine,
#   simplifycfg. The kernels/ plans are vectorised, register-tiled and unrolled by hand, so
#   that is all they need: against O1 their layers ran within noise (one thread, alternated,
#   bit-identical outputs) and the zoo's networks within the noise of two builds of the same
#   code (+-4%), for a tenth of the IR-pass time (ResNet-50's kernel modules: 0.76 -> 0.08 s),
#   about half their LLVM time. Loop rotation is in for the Winograd kernels (4-6% slower
#   lean without it), although they now take O1 (below).
# - "O1", "O2": LLVM's default pipelines at that speed level, loop + SLP vectorisation on.
#   The Winograd plans need O1: their transforms ran 3-16% slower "lean" on maps of 32x32 and
#   less (the transform's 36 live vectors spill more). The rest of a model (the emit/
#   kernels, scalar loops left to LLVM's vectoriser) needs O2: DenseNet-121 ran 8% slower with
#   its module at O1; O3 bought nothing over O2 for ~6% more LLVM time.
# Unrolling is off at O1: it cost ~10% of the kernel modules' IR time and changed no object.
LEAN, O1, O2 = "lean", "O1", "O2"
KERNEL_PIPELINE = LEAN   # a kernels/ plan's unless its class says otherwise (`pipeline`)
MODEL_PIPELINE = O2      # the main module's
PIPELINES = (LEAN, O1, O2)
PipelinedModule = tuple[ir.Module, str]  # a module and the pipeline it compiles with


def plan_pipeline(plan: object) -> str:
    """The pipeline a kernels/ plan's module compiles with: its class attribute `pipeline`,
    else KERNEL_PIPELINE."""
    return getattr(plan, "pipeline", KERNEL_PIPELINE)


def optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, pipeline: str = KERNEL_PIPELINE
             ) -> None:
    """Run the named pipeline (see PIPELINES) over `mod`."""
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; known: {PIPELINES}")
    pto = llvm.create_pipeline_tuning_options(speed_level=2 if pipeline == O2 else 1)
    pto.loop_vectorization = pto.slp_vectorization = pipeline != LEAN
    pto.loop_unrolling = pipeline == O2
    pb = llvm.create_pass_builder(tm, pto)
    if pipeline != LEAN:
        pb.getModulePassManager().run(mod, pb)
        return
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_sroa_pass()
    mpm.add_loop_rotate_pass()
    mpm.add_instruction_combine_pass()
    mpm.add_simplify_cfg_pass()
    mpm.run(mod, pb)


class JitModule:
    """Verify, optimise (`pipeline`, see PIPELINES) and MCJIT-compile an `ir.Module`; look up
    functions by name."""

    def __init__(self, module: ir.Module, pipeline: str = KERNEL_PIPELINE) -> None:
        # A fresh target machine each time: the MCJIT engine takes ownership of it.
        self.tm = host_target_machine()
        self.mod = llvm.parse_assembly(str(module))
        self.mod.verify()
        optimize(self.mod, self.tm, pipeline)
        self.engine = llvm.create_mcjit_compiler(self.mod, self.tm)
        self.engine.finalize_object()

    def function(self, name: str, restype: type | None, *argtypes: type) -> ctypes._CFuncPtr:
        address = self.engine.get_function_address(name)
        if not address:
            raise KeyError(f"no function {name!r} in the JIT module")
        return ctypes.CFUNCTYPE(restype, *argtypes)(address)

    def assembly(self) -> str:
        return self.tm.emit_assembly(self.mod)
