"""A minimal JIT for the kernel tests and benchmarks: verify, optimise with a named pipeline
(codegen.PIPELINES) and MCJIT-compile one `ir.Module`, then call its functions through ctypes.
The backend proper compiles through codegen.compile_objects and runtime.py."""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from graphcnn.backends.llvm.codegen import KERNEL_PIPELINE, optimize, target_machine
from llvmlite import ir


def new_module(name: str, tm: llvm.TargetMachine | None = None) -> ir.Module:
    module = ir.Module(name=name)
    tm = tm or target_machine("host")
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    return module


class JitModule:
    """Verify, optimise (`pipeline`) and MCJIT-compile an `ir.Module`; look up functions."""

    def __init__(self, module: ir.Module, pipeline: str = KERNEL_PIPELINE) -> None:
        # A fresh target machine each time: the MCJIT engine takes ownership of it.
        self.tm = target_machine("host")
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
