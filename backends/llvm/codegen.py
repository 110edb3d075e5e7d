"""LLVM module -> optimised object code for the host CPU (or a portable x86-64 baseline).

Every module compiles with a named pipeline (PIPELINES, below, which says why): the main
module (pool, tasks, the emit/ kernels LLVM vectorises) at O2, the kernel modules of the
hand-vectorised kernels/ plans "lean" (SSA construction and clean-up only), the Winograd ones
at O1. Two target machines: the JIT one (large code model, so the weights arena may live
anywhere in the address space) and the AOT one (position-independent code for a shared
library). Each module is verified before optimisation. Modules compile in forked children
(ObjectBuilder), the kernel modules as soon as lowering has finished each, so LLVM works while
Python still lowers the rest of the graph.
"""
from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import subprocess
import sys
import warnings

import llvmlite.binding as llvm
from llvmlite import ir

from graphcnn import progress
from graphcnn.errors import CompileError, InvalidOptionError, PrecisionWarning
from graphcnn.precisions import check_precision

_initialized = False
CHILD_TIMEOUT_S = 120.0  # silence from a forked compile child before giving up on it
silent_children = 0  # children killed for CHILD_TIMEOUT_S of silence (a deadlock; tests read it)


def init_llvm() -> None:
    global _initialized
    if not _initialized:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _initialized = True


# The x86-64 microarchitecture levels (psABI): each a portable baseline and LLVM CPU name; the
# features are spelled out because the kernels' vector width is read from them (vector_width).
_V2 = "+cx16,+sahf,+popcnt,+sse3,+ssse3,+sse4.1,+sse4.2"
_V3 = _V2 + ",+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+xsave"
_V4 = _V3 + ",+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl"
LEVELS = {"x86-64-v2": _V2, "x86-64-v3": _V3, "x86-64-v4": _V4}
PORTABLE_CPU = "x86-64-v3"  # the documented portable build: AVX2 + FMA, any x86 CPU since ~2015
SPECIAL_CPUS = ("host", "generic", *LEVELS)


def cpu_and_features(cpu: str) -> tuple[str, str]:
    """("host" | "generic" | "x86-64-v2/v3/v4" | an LLVM cpu name) -> (cpu name, feature
    string); another name is a CompileError listing the valid ones (LLVM itself would abort
    the process)."""
    init_llvm()
    if cpu == "host":
        return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    if cpu == "generic":
        return "x86-64", ""
    if not isinstance(cpu, str):
        raise InvalidOptionError(f"cpu must be a str, got {type(cpu).__name__}")
    if cpu in LEVELS:
        return cpu, LEVELS[cpu]
    names = known_cpus()
    if names and cpu not in names:
        raise InvalidOptionError(f"unknown cpu {cpu!r}; valid: "
                                 + ", ".join(repr(c) for c in SPECIAL_CPUS) + ", "
                                 + ", ".join(sorted(names - set(LEVELS))))
    return cpu, ""


_known_cpus: frozenset[str] | None = None


def known_cpus() -> frozenset[str]:
    """The CPU names LLVM knows for this process's target, asked once per process: llvmlite
    has no call for the list, but a target machine made with cpu="help" prints it to stderr,
    so a child Python does that (~0.2 s, only for a cpu other than "host" or "generic").
    Empty if the child could not tell (then names are not checked)."""
    global _known_cpus
    if _known_cpus is None:
        script = ("import llvmlite.binding as l; l.initialize_native_target(); "
                  "l.Target.from_triple(l.get_process_triple()).create_target_machine(cpu='help')")
        try:
            proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                  text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
            text = proc.stderr
        except (OSError, subprocess.SubprocessError):
            text = ""
        _known_cpus = frozenset(_parse_cpu_list(text))
    return _known_cpus


def _parse_cpu_list(text: str) -> list[str]:
    """The names of LLVM's "Available CPUs for this target:" block ("  name - description")."""
    names, inside = [], False
    for line in text.splitlines():
        if line.startswith("Available CPUs"):
            inside = True
        elif line.startswith("Available features"):
            break
        elif inside and " - " in line:
            names.append(line.split(" - ", 1)[0].strip())
    return names


def vector_width(cpu: str) -> int:
    """Floats per vector register for the target: 16 (AVX-512), 8 (AVX), else 4; for a
    named LLVM CPU (no feature string) what LLVM's code for that CPU uses."""
    name, features = cpu_and_features(cpu)
    if not features and name != "x86-64":
        return _named_cpu_width(name)
    if "+avx512f" in features.split(","):
        return 16
    if "+avx" in features.split(","):
        return 8
    return 4


# LLVM CPU names with AVX512-BF16 (a named CPU carries no feature string to read it from)
BF16_CPUS = frozenset({"cooperlake", "sapphirerapids", "emeraldrapids", "graniterapids",
                       "graniterapids-d", "diamondrapids", "znver4", "znver5"})


def has_bf16(cpu: str) -> bool:
    """Whether code for `cpu` may use AVX512-BF16 (vdpbf16ps, vcvtneps2bf16)."""
    name, features = cpu_and_features(cpu)
    if not features:
        return name in BF16_CPUS
    return "+avx512bf16" in features.split(",")


def resolve_precision(precision: str, cpu: str) -> str:
    """The precision the kernels for `cpu` compute in: "fp32", or "bf16" where the CPU has
    AVX512-BF16; bf16 asked of a CPU without it compiles fp32, with a warning."""
    if check_precision(precision) == "bf16" and not has_bf16(cpu):
        warnings.warn(f"precision='bf16' needs AVX512-BF16, which cpu {cpu!r} "
                      f"({cpu_and_features(cpu)[0]}) does not have: compiling float32",
                      PrecisionWarning, stacklevel=4)
        return "fp32"
    return precision


_named_widths: dict[str, int] = {}


def _named_cpu_width(name: str) -> int:
    """The widest float vector register in the assembly LLVM emits for `name` (a known CPU)
    adding two <16 x float>: zmm 16, ymm 8, else 4 (~1 ms, once per name)."""
    if name not in _named_widths:
        tm = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu=name)
        mod = llvm.parse_assembly(
            "define <16 x float> @f(<16 x float> %a, <16 x float> %b) {\n"
            "  %c = fadd <16 x float> %a, %b\n  ret <16 x float> %c\n}\n")
        asm = tm.emit_assembly(mod)
        _named_widths[name] = 16 if "zmm" in asm else 8 if "ymm" in asm else 4
    return _named_widths[name]


def target_machine(cpu: str, aot: bool = False) -> llvm.TargetMachine:
    """JIT: the large code model, so the weights arena may live anywhere in the address space;
    AOT: position-independent code for a shared library."""
    name, features = cpu_and_features(cpu)
    target = llvm.Target.from_triple(llvm.get_process_triple())
    if aot:
        return target.create_target_machine(cpu=name, features=features, opt=3, reloc="pic",
                                            codemodel="default")
    return target.create_target_machine(cpu=name, features=features, opt=3,
                                        codemodel="jitdefault", jit=True)


# Optimisation pipelines, by name (new pass manager).
# - "lean": SROA (accumulator allocas become registers), loop rotation, instcombine, simplifycfg:
#   the kernels/ plans are vectorised, register-tiled and unrolled by hand, so that is all they
#   need, for a fraction of O1's compile time.
# - "O1": the Winograd plans' (their transforms' many live vectors need LLVM's scheduling).
# - "O2": the main module's (the emit/ kernels are scalar loops left to LLVM's vectorisers).
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
    """Run the named pipeline (see PIPELINES) over `mod`; unrolling only at O2 (at O1 it
    cost compile time and changed no object)."""
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


class ObjectBuilder:
    """Object code for modules compiled while the caller goes on: `submit(module, pipeline)`
    forks a child that compiles it at once (e.g. a finished kernel module while the rest of
    the graph is still being lowered), `collect(module)` returns its object code. llvmlite
    serialises LLVM calls within a process, so threads would not help. Without fork, or if a
    child fails or goes silent, `collect` compiles the module here. `close` kills and reaps
    the children never collected (call it when lowering fails half way)."""

    def __init__(self, cpu: str, aot: bool = False):
        self.cpu, self.aot = cpu, aot
        self._children: dict[int, tuple[int, int] | None] = {}  # id(module) -> its child

    def submit(self, module: ir.Module, pipeline: str) -> None:
        """Start compiling `module` with `pipeline`; it must not change afterwards."""
        if id(module) not in self._children:
            child = (_fork_compile(module, self.cpu, self.aot, pipeline)
                     if hasattr(os, "fork") else None)
            self._children[id(module)] = child

    def collect(self, module: ir.Module, pipeline: str) -> bytes:
        """The object code of `module`: its child's, else compiled here with `pipeline`."""
        child = self._children.pop(id(module), None)
        obj = _collect(child) if child is not None else None
        return obj if obj is not None else compile_object(module, self.cpu, self.aot, pipeline)

    def close(self) -> None:
        for child in self._children.values():
            if child is not None:
                _abandon(child)
        self._children.clear()


def compile_objects(modules: list[PipelinedModule], cpu: str, aot: bool = False,
                    builder: ObjectBuilder | None = None) -> list[bytes]:
    """compile_object for each (module, pipeline), each in a forked child process, all running
    alongside; modules already submitted to `builder` are collected, not compiled again. A
    child also prints its module to LLVM assembly (~0.05-0.1 s for a 0.5 MB kernel module), so
    that is not done serially before the forks. The main module compiles in a child too:
    llvmlite's pass builder leaks its instrumentation callbacks (~0.2 MB a module), which a
    long-lived process compiling models would accumulate. Without fork, or if a child fails,
    the remaining modules compile here, one after another."""
    b = builder or ObjectBuilder(cpu, aot)
    try:
        for module, pipeline in modules:
            b.submit(module, pipeline)
        objects = []
        for module, pipeline in modules:
            progress.report("compile", len(objects), len(modules), module.name)
            objects.append(b.collect(module, pipeline))
        progress.report("compile", len(modules), len(modules))
    finally:
        b.close()
    return objects


def _fork_compile(module: ir.Module, cpu: str, aot: bool, pipeline: str
                  ) -> tuple[int, int] | None:
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    # Fork holding llvmlite's lock, so no other thread is inside an LLVM call: the child would
    # find that lock (and LLVM's own) held by a thread it does not have, and wait forever.
    with _llvm_lock():
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return None
    if pid == 0:  # child: compile, send the object, leave without Python clean-up
        code = 1
        try:
            # a collection would touch every object of the parent's heap (copy-on-write
            # faults for nothing: the child leaves through os._exit soon)
            gc.disable()
            os.close(read_fd)
            view = memoryview(compile_object(module, cpu, aot, pipeline))
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _llvm_lock():
    """llvmlite's process-wide lock around every LLVM C-API call (a context manager)."""
    return getattr(llvm.ffi.lib, "_lock", None) or contextlib.nullcontext()


def _collect(child: tuple[int, int]) -> bytes | None:
    """The child's object code, or None if it failed or went silent for CHILD_TIMEOUT_S (a
    child forked while another thread held a lock it needs could hang: kill it, compile here)."""
    global silent_children
    pid, fd = child
    chunks = []
    with os.fdopen(fd, "rb", buffering=0) as f:
        while True:
            ready, _, _ = select.select([f], [], [], CHILD_TIMEOUT_S)
            if not ready:
                silent_children += 1
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            chunk = f.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks) if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else None


def _abandon(child: tuple[int, int]) -> None:
    pid, fd = child
    os.close(fd)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _prepared(module: ir.Module, cpu: str, aot: bool) -> str:
    tm = target_machine(cpu, aot)
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    return str(module)


def compile_object(module: ir.Module, cpu: str, aot: bool = False,
                   pipeline: str = MODEL_PIPELINE) -> bytes:
    """Verify, optimise (`pipeline`, one of PIPELINES) and emit object code."""
    return _compile_text(_prepared(module, cpu, aot), module.name, cpu, aot, pipeline)


def _compile_text(text: str, name: str, cpu: str, aot: bool, pipeline: str) -> bytes:
    tm = target_machine(cpu, aot)
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"generated LLVM IR for {name!r} does not verify: {e}") from e
    optimize(mod, tm, pipeline)
    return tm.emit_object(mod)
