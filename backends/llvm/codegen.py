"""LLVM module -> optimised object code for the host CPU (or a portable x86-64 baseline).

O3 through the new pass manager (loop + SLP vectorisation). Two target machines: the JIT one
(large code model, so the weights arena may live anywhere in the address space) and the AOT one
(position-independent code for a shared library). Each module is verified before optimisation.
"""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir

from graphcnn.errors import CompileError

_initialized = False


def init_llvm() -> None:
    global _initialized
    if not _initialized:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _initialized = True


def cpu_and_features(cpu: str) -> tuple[str, str]:
    """("host" | "generic" | an LLVM cpu name) -> (cpu name, feature string)."""
    init_llvm()
    if cpu == "host":
        return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    if cpu == "generic":
        return "x86-64", ""
    return cpu, ""


def vector_width(cpu: str) -> int:
    """Floats per vector register for the target: 16 (AVX-512), 8 (AVX), else 4."""
    _, features = cpu_and_features(cpu)
    if "+avx512f" in features.split(","):
        return 16
    if "+avx" in features.split(","):
        return 8
    return 4


def target_machine(cpu: str, aot: bool = False) -> llvm.TargetMachine:
    name, features = cpu_and_features(cpu)
    target = llvm.Target.from_triple(llvm.get_process_triple())
    if aot:
        return target.create_target_machine(cpu=name, features=features, opt=3, reloc="pic",
                                            codemodel="default")
    return target.create_target_machine(cpu=name, features=features, opt=3,
                                        codemodel="jitdefault", jit=True)


def compile_object(module: ir.Module, cpu: str, aot: bool = False) -> bytes:
    """Verify, optimise (O3, new pass manager) and emit object code."""
    tm = target_machine(cpu, aot)
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    try:
        mod = llvm.parse_assembly(str(module))
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"generated LLVM IR for {module.name!r} does not verify: {e}") from e
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod)
