"""What every kernel emitter shares: the registry, the emission context and the task ABI.

A node lowers to one or more *tasks*. A task is an LLVM function

    void name(i8* env, i64 task_begin, i64 task_end)

that computes tasks [task_begin, task_end) of the node; tasks write disjoint outputs with a
fixed summation order, so any split of [0, num_tasks) over threads gives bit-identical results.
`env` points at four pointers `{float** inputs, float** outputs, i8* workspace, i32* status}`:
`ctx.ptr` turns a graph Value into a pointer of its element type from it (float* for float32,
i64*/i32*/i8* for int64/int32/bool; graph input, graph output, workspace slot, or the
packed-weights arena, a global symbol). `status` is 0 unless a kernel that checks its runtime
data (a gather's indices) found it invalid: it then stores its error code (`ctx.fail`), which
`run` returns; the other kernels never touch it.

Emitters register by op name (`@emitter("relu", ...)`), one module per op family.
"""
from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from graphcnn.ir import Node, Value

from ..builder import BF16, F32, F32P, I8P, I32, I64, VOID, for_range, i64
from ..codegen import PipelinedModule, plan_pipeline

TASK_TYPE = ir.FunctionType(VOID, [I8P, I64, I64])

# the element type of each dtype the llvm backend holds (bool: one byte, 0 or 1)
ELEMENT_TYPES: dict[str, ir.Type] = {"float32": F32, "int64": I64, "int32": I32,
                                     "bool": ir.IntType(8), "bfloat16": BF16}


def element_type(dtype: str) -> ir.Type:
    return ELEMENT_TYPES[dtype]

# op name -> emitter(ctx, node) -> None (the emitter calls ctx.add_task)
EMITTERS: dict[str, Callable[[EmitContext, Node], None]] = {}


def emitter(*ops: str):
    def register(fn):
        for op in ops:
            EMITTERS[op] = fn
        return fn
    return register


@dataclass
class Task:
    """One parallel-for: `fn(env, begin, end)` over [0, num_tasks); `work` (flops for conv and
    gemm, elements for the rest) decides whether the thread pool is worth waking
    (threads.worth_parallel)."""

    fn: ir.Function
    num_tasks: int
    work: int
    node: str
    op: str = ""


@dataclass(frozen=True)
class Location:
    kind: str    # "input" | "output" | "workspace" | "weights"
    index: int   # input/output position, or byte offset in the workspace / weights arena
    offset: int = 0  # bytes into the caller's input/output buffer (a split or slice view)

    def shifted(self, nbytes: int) -> Location:
        """The location `nbytes` further into the same buffer."""
        if self.kind in ("input", "output"):
            return Location(self.kind, self.index, self.offset + nbytes)
        return Location(self.kind, self.index + nbytes)


# kernels/ plans go to separate modules, one open module per pipeline, of about this many LLVM
# instructions: a module full enough is handed over (`on_kernel_module`, e.g. to a forked
# compile in codegen.py) while lowering goes on, so LLVM runs alongside the Python lowering,
# and small chunks keep the tail after lowering short
KERNEL_CHUNK_INSTRUCTIONS = 4000


class EmitContext:
    """Module-wide emission state: buffer locations, the weights arena, the task list."""

    def __init__(self, module: ir.Module, vector_width: int, weights_symbol: str,
                 annotations: dict[str, dict] | None = None,
                 on_kernel_module: Callable[[ir.Module, str], None] | None = None):
        self.module = module
        self.annotations = annotations or {}  # the pass pipeline's hints, e.g. kernel family
        self.vw = vector_width
        self.tasks: list[Task] = []
        self.locations: dict[int, Location] = {}   # id(Value) -> where its floats live
        self.weight_chunks: list[np.ndarray] = []
        self.weights_bytes = 0
        self._const_offsets: dict[int, int] = {}
        self._kernels: dict[object, ir.Function] = {}
        self.codes_given = 0  # next_task_code calls: a task that bakes one in is not shared
        # every sealed kernel module, in the order they were handed over
        self.kernel_modules: list[PipelinedModule] = []
        self.on_kernel_module = on_kernel_module
        # pipeline -> its open kernel module and the instructions in it so far
        self._open: dict[str, tuple[ir.Module, int]] = {}
        self._module_count = 0
        self.weights = ir.GlobalVariable(module, ir.IntType(8), weights_symbol)
        self.weights.linkage = "external"
        self.weights.global_constant = True
        self.weights.align = 64

    def kernel(self, plan, name: str) -> ir.Function:
        """The function for a kernels/ plan, emitted once per distinct plan: plans are frozen
        dataclasses of every compile-time constant, and weights/buffers are arguments, so
        layers of the same shape share one function (ResNet-50: 53 convs, far fewer shapes).
        The body goes to the open kernel module of the plan's pipeline (codegen.plan_pipeline),
        the main module gets a declaration."""
        fn = self._kernels.get(plan)
        if fn is None:
            pipeline = plan_pipeline(plan)
            unique = self.module.get_unique_name(f"k.{name}")
            if pipeline not in self._open:
                target = ir.Module(name=f"{self.module.name}.kernels{self._module_count}")
                self._module_count += 1
                self._open[pipeline] = (target, 0)
            target, load = self._open[pipeline]
            before = len(target.globals)
            body = plan.emit(target, unique)
            load += sum(sum(len(bb.instructions) for bb in g.blocks)
                        for g in list(target.globals.values())[before:]
                        if isinstance(g, ir.Function))
            self._open[pipeline] = (target, load)
            fn = ir.Function(self.module, body.ftype, unique)  # a declaration here
            self._kernels[plan] = fn
            if load >= KERNEL_CHUNK_INSTRUCTIONS:
                self._seal(pipeline)
        return fn

    def seal_kernels(self) -> None:
        """Close every open kernel module (no kernel is added to them afterwards) and hand
        each to `on_kernel_module`."""
        for pipeline in list(self._open):
            self._seal(pipeline)

    def _seal(self, pipeline: str) -> None:
        module, _ = self._open.pop(pipeline)
        self.kernel_modules.append((module, pipeline))
        if self.on_kernel_module is not None:
            self.on_kernel_module(module, pipeline)

    # ----- weights arena ---------------------------------------------------------------------
    def add_weights(self, array: np.ndarray) -> int:
        """Append an array to the arena (64-byte aligned, in C order) as float32, or as its own
        dtype when that is int64, int32 or bool (an index table); returns its byte offset. A
        strided view (packed weights as a transpose) is copied only into the arena."""
        data = np.asarray(array)
        if data.dtype.name not in ELEMENT_TYPES:
            data = data.astype(np.float32)
        offset = self.weights_bytes
        self.weight_chunks.append(data)
        self.weights_bytes = offset + -(-data.nbytes // 64) * 64
        return offset

    def weights_blob(self) -> np.ndarray:
        """The arena as one 64-byte aligned uint8 array (no bytes copy: ResNet-50's is ~100 MB).

        The memory is an anonymous mmap (page aligned, zero filled): numpy asks for transparent
        huge pages on big arrays, which can make the kernel compact memory on each fault. Only
        the chunks are copied; the padding between them is already zero."""
        total = max(self.weights_bytes, 64)
        try:
            blob = np.frombuffer(mmap.mmap(-1, total), dtype=np.uint8)
        except (OSError, ValueError):  # no anonymous mmap: an aligned slice of a numpy array
            raw = np.zeros(total + 64, dtype=np.uint8)
            start = (-raw.ctypes.data) % 64
            blob = raw[start:start + total]
        offset = 0
        for chunk in self.weight_chunks:
            target = blob[offset:offset + chunk.nbytes].view(chunk.dtype).reshape(chunk.shape)
            target[...] = chunk
            offset += -(-chunk.nbytes // 64) * 64
        return blob

    def weights_ptr(self, b: ir.IRBuilder, offset: int, name: str, ty: ir.Type = F32
                    ) -> ir.Value:
        p = b.gep(self.weights, [i64(offset)], name=f"{name}.b") if offset else self.weights
        return b.bitcast(p, ty.as_pointer(), name=name)

    # ----- buffers ---------------------------------------------------------------------------
    def ptr(self, b: ir.IRBuilder, env: ir.Value, value: Value, name: str | None = None
            ) -> ir.Value:
        """Pointer to the data of a graph Value inside a task function: float* for float32, the
        dtype's element type (ELEMENT_TYPES) otherwise."""
        name = name or _ident(value.name)
        ty = element_type(value.type.dtype)
        loc = self.locations.get(id(value))
        if loc is None:
            if not value.is_constant:
                raise KeyError(f"value {value.name!r} has no buffer")
            if id(value) not in self._const_offsets:
                self._const_offsets[id(value)] = self.add_weights(value.data)
            return self.weights_ptr(b, self._const_offsets[id(value)], name, ty)
        if loc.kind == "weights":
            return self.weights_ptr(b, loc.index, name, ty)
        slots = b.bitcast(env, I8P.as_pointer(), name=f"{name}.env")
        if loc.kind == "workspace":
            base = b.load(b.gep(slots, [i64(2)], name=f"{name}.wsp"), name=f"{name}.ws")
            p = b.gep(base, [i64(loc.index)], name=f"{name}.b") if loc.index else base
            return b.bitcast(p, ty.as_pointer(), name=name)
        field = 0 if loc.kind == "input" else 1
        table = b.bitcast(b.load(b.gep(slots, [i64(field)], name=f"{name}.tp"),
                                 name=f"{name}.t"), F32P.as_pointer(), name=f"{name}.tab")
        p = b.load(b.gep(table, [i64(loc.index)], name=f"{name}.slot"),
                   name=name if ty == F32 and not loc.offset else f"{name}.f")
        if loc.offset:
            raw = b.gep(b.bitcast(p, I8P, name=f"{name}.i8"), [i64(loc.offset)],
                        name=f"{name}.at")
            return b.bitcast(raw, ty.as_pointer(), name=name)
        return p if ty == F32 else b.bitcast(p, ty.as_pointer(), name=name)

    def fail(self, b: ir.IRBuilder, env: ir.Value, code: int) -> None:
        """Record that this kernel found its runtime data invalid: `run` returns `code`
        (threads may store concurrently; any of their codes names a failing kernel)."""
        slots = b.bitcast(env, I8P.as_pointer(), name="status.env")
        raw = b.load(b.gep(slots, [i64(3)], name="status.pp"), name="status.p8")
        status = b.bitcast(raw, I32.as_pointer(), name="status.p")
        b.store_atomic(ir.Constant(I32, code), status, "monotonic", 4)

    def next_task_code(self) -> int:
        """The error code of the task emitted next: its 1-based position in `tasks` (and in the
        manifest's kernel list, which names its node and op)."""
        self.codes_given += 1
        return len(self.tasks) + 1

    # ----- tasks -----------------------------------------------------------------------------
    def new_task_fn(self, name: str) -> ir.Function:
        fn = ir.Function(self.module, TASK_TYPE, self.module.get_unique_name(_ident(name)))
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        fn.attributes.add("noinline")
        fn.args[0].name, fn.args[1].name, fn.args[2].name = "env", "task_begin", "task_end"
        return fn

    @contextmanager
    def task(self, node: Node, num_tasks: int, work: int, suffix: str = ""
             ) -> Iterator[tuple[ir.IRBuilder, ir.Value, ir.Value]]:
        """Emit a task function whose body runs once per task index; yields (b, env, t)."""
        fn = self.new_task_fn(f"{node.name}{suffix}")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        env, begin, end = fn.args
        with for_range(b, begin, end, name="t") as t:
            yield b, env, t
        b.ret_void()
        self.tasks.append(Task(fn, max(num_tasks, 1), work, node.name, node.op))


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in name)


__all__ = ["ELEMENT_TYPES", "EMITTERS", "EmitContext", "Location", "Task", "element_type",
           "emitter"]
