"""AOT: the model as a shared library plus a C header; no Python needed to call it.

The library holds the same code as the JIT (compiled position-independent) and the packed
weights: an assembler stub `.incbin`s the weights arena into .rodata under the symbol the code
references. `cc -shared` (a C compiler at export time only) links the objects with libpthread
and libm. The header beside it (`libnet.so` -> `libnet.h`) declares the entry point and the
thread-pool functions, and gives input/output shapes and the workspace size as macros.

Names: every exported symbol and macro carries the library's name (`name=`, default the file
name's stem without `lib`, as a C identifier): `resnet_run`, `resnet_init_threads`,
`RESNET_WORKSPACE_BYTES`. A small C stub defines the prefixed entry points over the code's own
`run` and pool functions, and a linker version script exports only them: the kernels, the
weights and `run` stay local, so two libraries link into one program without clashing.

Batches: a graph proved batch-wise (graphcnn/rebatch.py, on the graph as given) also gets
`<name>_run_batch(n, inputs, outputs, workspace)`, n samples through ceil(n/B) calls of `run` at
the compiled batch B; the header documents it, or says why a graph has none.

Threads: there is no Python process to share a pool with, so the library links its own copy of
the pool (threads.pool_module(aot=True), hidden symbols: two libraries in one process never
share or interpose each other's pool). It starts on first use, <name>_init_threads(n); until
then the library runs single-threaded.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from graphcnn.errors import CompileError
from graphcnn.ir import Graph
from graphcnn.opt_levels import DEFAULT_OPT_LEVEL, check_opt_level

from .codegen import (
    MODEL_PIPELINE,
    compile_objects,
    cpu_and_features,
    resolve_precision,
    vector_width,
)
from .lower import lower
from .target_pipeline import optimized
from .threads import pool_module


def find_cc() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def library_name(path: str | os.PathLike, name: str | None = None) -> str:
    """The prefix of a library's symbols: `name` if given (a C identifier, else a
    CompileError), else the file name's stem without `lib`, sanitised to one."""
    if name is not None:
        if not isinstance(name, str) or not C_IDENTIFIER.fullmatch(name):
            raise CompileError(f"library name {name!r} is not a C identifier (letters, digits, "
                               "underscores, not starting with a digit)")
        return name
    stem = Path(path).name.split(".")[0].removeprefix("lib")
    stem = re.sub(r"[^A-Za-z0-9_]", "_", stem) or "model"
    return stem if C_IDENTIFIER.fullmatch(stem) else f"model_{stem}"


def export_library(graph: Graph, path: str | os.PathLike, cpu: str = "host",
                   _optimized: bool = False, opt_level: int | None = None,
                   rewrites: bool = True, threads: int | None = None,
                   cache: bool | None = None, name: str | None = None,
                   precision: str = "fp32") -> str:
    """Compile `graph` to the shared library `path` and write its header; returns the header.
    `name` prefixes the exported symbols and macros (see library_name).

    Unless `_optimized` (the graph already went through gc.compile), the pass pipeline runs first
    like gc.compile(graph, target="llvm"). `threads` and `cache` are accepted for symmetry with
    compile and unused: a C caller picks its thread count with graphcnn_init_threads(n), and
    the library is always built afresh (position-independent code, unlike the JIT cache).
    """
    cc = find_cc()
    if cc is None:
        raise CompileError("export_library needs a C compiler (cc) to link the shared library")
    batching = batch_plan(graph)  # on the graph as given: the passes add layout ops
    if not _optimized:
        level = check_opt_level(DEFAULT_OPT_LEVEL if opt_level is None else opt_level)
        graph = optimized(graph, level, rewrites, cpu, resolve_precision(precision, cpu))
    path = Path(path)
    stem = library_name(path, name)
    if not path.parent.is_dir():
        raise CompileError(f"cannot write {path}: directory {path.parent} does not exist")
    symbol = f"graphcnn_weights_{stem}"
    lowered = lower(graph, vector_width(cpu), symbol)
    batch = batching if isinstance(batching, int) else None
    objects = compile_objects([*lowered.modules, (pool_module(aot=True), MODEL_PIPELINE)], cpu,
                              aot=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        object_files = []
        for i, obj in enumerate(objects):
            object_files.append(str(tmpdir / f"model{i}.o"))
            Path(object_files[-1]).write_bytes(obj)
        (tmpdir / "weights.bin").write_bytes(lowered.weights)
        (tmpdir / "weights.s").write_text(
            f"\t.section .rodata\n\t.globl {symbol}\n\t.type {symbol}, @object\n"
            f"\t.balign 64\n{symbol}:\n\t.incbin \"{tmpdir / 'weights.bin'}\"\n"
            f"\t.size {symbol}, {len(lowered.weights)}\n"
            "\t.section .note.GNU-stack,\"\",@progbits\n")
        (tmpdir / "entry.c").write_text(entry_stub(stem) + (
            batch_stub(graph, stem, batch, lowered.workspace_bytes) if batch else ""))
        (tmpdir / "exports.map").write_text(
            "{\n  global:\n" + "".join(f"    {s};\n" for s in exported_symbols(stem, batch))
            + "  local: *;\n};\n")
        cmd = [cc, "-shared", "-fPIC", "-O2", "-o", str(path), *object_files,
               str(tmpdir / "weights.s"), str(tmpdir / "entry.c"),
               f"-Wl,--version-script={tmpdir / 'exports.map'}", "-lpthread", "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CompileError(f"linking {path} failed: {' '.join(cmd)}\n{proc.stderr}")
    header = path.with_suffix(".h")
    header.write_text(c_header(graph, stem, lowered.workspace_bytes, cpu, batching))
    return str(header)


def exported_symbols(stem: str, batch: int | None = None) -> list[str]:
    return [f"{stem}_run", *([f"{stem}_run_batch"] if batch else []), f"{stem}_init_threads",
            f"{stem}_shutdown_threads"]


def batch_plan(graph: Graph) -> int | str:
    """The batch B that <name>_run_batch slices by, or why the library has no such entry."""
    from graphcnn.rebatch import graph_batch

    try:
        return graph_batch(graph)
    except CompileError as e:
        return str(e)


def _align(nbytes: int) -> int:
    return -(-nbytes // 64) * 64


def batch_layout(graph: Graph, batch: int, workspace_bytes: int
                 ) -> tuple[list[int], list[int], list[int], list[int], int]:
    """Bytes per sample of each input and output, the workspace offsets of their batch-B
    copies for a tail slice (after run's own workspace), and the total workspace."""
    values = [*graph.inputs, *graph.outputs]
    sample = [v.type.size // batch * np.dtype(v.type.dtype).itemsize for v in values]
    offsets, at = [], _align(max(workspace_bytes, 64))
    for nbytes in sample:
        offsets.append(at)
        at += _align(nbytes * batch)
    k = len(graph.inputs)
    return sample[:k], sample[k:], offsets[:k], offsets[k:], at


def batch_stub(graph: Graph, stem: str, batch: int, workspace_bytes: int) -> str:
    """<stem>_run_batch: run over ceil(n/B) slices of B samples; a tail of fewer goes through
    zero-padded copies in the workspace, and only its rows are copied out."""
    ins, outs, in_at, out_at, _ = batch_layout(graph, batch, workspace_bytes)

    def table(name: str, numbers: list[int]) -> str:
        return f"    static const int64_t {name}[] = {{{', '.join(map(str, numbers))}}};"

    return "\n".join([
        "#include <stdint.h>", "#include <string.h>",
        f"int {stem}_run_batch(int64_t n, void** inputs, void** outputs, void* workspace) {{",
        table("in_sample", ins), table("out_sample", outs),
        table("in_at", in_at), table("out_at", out_at),
        f"    void* in[{len(ins)}];", f"    void* out[{len(outs)}];",
        "    if (n < 1) return -1;",
        f"    for (int64_t s = 0; s < n; s += {batch}) {{",
        f"        int64_t rows = n - s < {batch} ? n - s : {batch};",
        f"        int tail = rows < {batch};",
        f"        for (int i = 0; i < {len(ins)}; i++) {{",
        "            char* src = (char*)inputs[i] + s * in_sample[i];",
        "            in[i] = src;",
        "            if (tail) {",
        "                in[i] = (char*)workspace + in_at[i];",
        "                memcpy(in[i], src, rows * in_sample[i]);",
        "                memset((char*)in[i] + rows * in_sample[i], 0,",
        f"                       ({batch} - rows) * in_sample[i]);",
        "            }", "        }",
        f"        for (int o = 0; o < {len(outs)}; o++)",
        "            out[o] = tail ? (char*)workspace + out_at[o]",
        "                          : (char*)outputs[o] + s * out_sample[o];",
        "        int rc = run(in, out, workspace);",
        "        if (rc) return rc;",
        f"        for (int o = 0; tail && o < {len(outs)}; o++)",
        "            memcpy((char*)outputs[o] + s * out_sample[o], out[o], rows * out_sample[o]);",
        "    }", "    return 0;", "}", ""])


def entry_stub(stem: str) -> str:
    """The prefixed entry points, each a call into the code's own (hidden) function."""
    hidden = '__attribute__((visibility("hidden")))'
    return "\n".join([
        f"{hidden} int run(void** inputs, void** outputs, void* workspace);",
        f"{hidden} long graphcnn_init_threads(long threads);",
        f"{hidden} void graphcnn_shutdown_threads(void);",
        f"int {stem}_run(void** inputs, void** outputs, void* workspace) {{",
        "    return run(inputs, outputs, workspace);", "}",
        f"long {stem}_init_threads(long threads) {{ return graphcnn_init_threads(threads); }}",
        f"void {stem}_shutdown_threads(void) {{ graphcnn_shutdown_threads(); }}", ""])


# the C element type of each dtype a graph input or output may have
C_TYPES = {"float32": "float", "int64": "int64_t", "int32": "int32_t", "bool": "uint8_t"}


def c_string(text: str) -> str:
    """`text` as a C string literal that reads back as its UTF-8 bytes: printable ASCII as is
    (but backslash and quote escaped, and `?` escaped so no trigraph forms), every other byte
    (newline, control, non-ASCII) a three-digit octal escape, so no name can end the literal,
    start a preprocessor line or close a comment."""
    out = []
    for byte in text.encode("utf-8", "surrogatepass"):
        ch = chr(byte)
        if ch in '\\"?':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """`text` safe inside a C comment on one line: printable ASCII, no comment end."""
    text = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in text)
    return text.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")


def c_header(graph: Graph, stem: str, workspace_bytes: int, cpu: str,
             batching: int | str = "not asked for") -> str:
    """The header: names only as C identifiers (`stem` is one) or escaped string literals;
    every macro starts with STEM_ and every function with stem_."""
    if not C_IDENTIFIER.fullmatch(stem):
        raise CompileError(f"library stem {stem!r} is not a C identifier")
    m = stem.upper()
    guard = f"GRAPHCNN_{m}_H"
    cpu_name, features = cpu_and_features(cpu)
    values = [*graph.inputs, *graph.outputs]
    for v in values:
        if v.type.dtype not in C_TYPES:
            raise CompileError(f"value {v.name!r} is {v.type}: no C type for it")
    # float** where every input and output is float32 (what C callers of such models pass)
    pointers = "float**" if all(v.type.dtype == "float32" for v in values) else "void**"
    lines = [
        f"/* {stem}: a graph compiled by graphcnn; its name and CPU are the macros below. */",
        f"#ifndef {guard}", f"#define {guard}", "",
        f"#define {m}_GRAPH_NAME {c_string(graph.name)}",
        f"#define {m}_CPU {c_string(cpu_name)}",
        f"#define {m}_CPU_FEATURES {c_string(features)}",
        "/* Call: in[NUM_INPUTS], out[NUM_OUTPUTS] pointers to dense row-major arrays of each",
        "   one's CTYPE (bool: uint8_t 0 or 1) and SIZE below, a workspace of WORKSPACE_BYTES",
        f"   (64-byte aligned, e.g. aligned_alloc(64, ...)), reused across calls. {stem}_run",
        "   returns 0, or k > 0 when its k-th kernel found the runtime input invalid (a gather",
        "   index out of range: nothing is read outside the table, and the outputs are not",
        "   meaningful). Calls sharing a workspace must not overlap. Optional: start the thread",
        f"   pool once with {stem}_init_threads(n) (default: single-threaded) and stop it with",
        f"   {stem}_shutdown_threads(). */",
        "#include <stdint.h>",
        f"#define {m}_NUM_INPUTS {len(graph.inputs)}",
        f"#define {m}_NUM_OUTPUTS {len(graph.outputs)}",
        f"#define {m}_WORKSPACE_BYTES {max(workspace_bytes, 64)}",
    ]
    for kind, values in (("INPUT", graph.inputs), ("OUTPUT", graph.outputs)):
        for i, v in enumerate(values):
            shape = ", ".join(str(d) for d in v.type.shape)
            lines += [f"#define {m}_{kind}_{i}_NAME {c_string(v.name)}",
                      f"#define {m}_{kind}_{i}_RANK {len(v.type.shape)}",
                      f"#define {m}_{kind}_{i}_SHAPE {{{shape}}}",
                      f"#define {m}_{kind}_{i}_SIZE {v.type.size}",
                      f"#define {m}_{kind}_{i}_CTYPE {C_TYPES[v.type.dtype]}"]
    batched = []
    if isinstance(batching, int):
        total = batch_layout(graph, batching, workspace_bytes)[4]
        lines += [
            f"/* {stem}_run_batch(n, in, out, ws): n >= 1 samples at once, each input and",
            "   output holding n of them along dim 0 (n * SAMPLE_SIZE elements), a workspace of",
            f"   BATCH_WORKSPACE_BYTES (64-byte aligned). It runs the batch-{batching} code over",
            f"   ceil(n / {batching}) slices (a shorter tail through padded copies in the",
            f"   workspace) and returns 0, {m}_ERROR_BATCH if n < 1, or the first slice's",
            f"   nonzero code as {stem}_run does. */",
            f"#define {m}_BATCH {batching}",
            f"#define {m}_BATCH_WORKSPACE_BYTES {total}",
            f"#define {m}_ERROR_BATCH (-1)"]
        for kind, values in (("INPUT", graph.inputs), ("OUTPUT", graph.outputs)):
            lines += [f"#define {m}_{kind}_{i}_SAMPLE_SIZE {v.type.size // batching}"
                      for i, v in enumerate(values)]
        batched = [(f"int {stem}_run_batch(int64_t n, {pointers} inputs, {pointers} outputs, "
                    "void* workspace);")]
    else:
        lines += [f"/* no {stem}_run_batch: {c_comment(batching)} */"]
    lines += ["", "#ifdef __cplusplus", "extern \"C\" {", "#endif",
              f"int {stem}_run({pointers} inputs, {pointers} outputs, void* workspace);",
              *batched,
              f"long {stem}_init_threads(long threads);",
              f"void {stem}_shutdown_threads(void);",
              "#ifdef __cplusplus", "}", "#endif", f"#endif /* {guard} */", ""]
    return "\n".join(lines)
