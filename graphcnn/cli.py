"""The `graphcnn` command line: demo, show, run, export, compile, bench.

User mistakes (a missing file, a bad model, a wrong input) print one `graphcnn: error: ...` line
and exit 1; tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence

import numpy as np

from .errors import GraphcnnError, InputError, ModelLoadError
from .ir import Graph
from .opt_levels import DEFAULT_OPT_LEVEL, OPT_LEVELS

TARGETS = ("llvm", "onnxruntime", "reference")


# ----- loading models ------------------------------------------------------------------------
def load_model(path: str, input_shapes: Sequence[str] = (), keep: bool = False,
               batch: int | None = None) -> Graph:
    """An .onnx file, or a DSL .py file defining `graph`, `build()` or `model` + `input_shape`.

    `input_shapes`: --input-shape specs NAME=1x3x224x224 for an ONNX file's symbolic dims;
    `keep`: import ONNX nodes without a graphcnn op as onnx_nodes (for --fallback); `batch`:
    re-bind the file's batch (--batch)."""
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file")
    shapes = parse_input_shapes(input_shapes)
    if path.endswith(".py"):
        if shapes or batch is not None:
            raise InputError("--input-shape and --batch apply to .onnx files; a DSL file "
                             "builds its own shapes")
        return load_dsl_file(path)
    from . import from_onnx

    return from_onnx(path, input_shapes=shapes or None, batch=batch,
                     **({"unsupported": "keep"} if keep else {}))


def parse_input_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """NAME=1x3x224x224 (repeatable) -> {NAME: (1, 3, 224, 224)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise InputError(f"--input-shape {spec!r}: write NAME=DIMxDIMx... with positive dims,"
                             f" e.g. input=1x3x224x224")
        if name in shapes:
            raise InputError(f"--input-shape gives {name!r} twice")
        shapes[name] = shape
    return shapes


def load_dsl_file(path: str) -> Graph:
    from .dsl import Layer

    try:
        scope = runpy.run_path(path, run_name="graphcnn_model")
    except GraphcnnError:
        raise
    except Exception as e:
        raise ModelLoadError(f"{path}: running the model file failed: {type(e).__name__}: {e}") from e
    if isinstance(scope.get("graph"), Graph):
        return scope["graph"]
    if callable(scope.get("build")):
        graph = scope["build"]()
        if isinstance(graph, Graph):
            return graph
    if isinstance(scope.get("model"), Layer) and "input_shape" in scope:
        name = os.path.splitext(os.path.basename(path))[0]
        return scope["model"].build(tuple(scope["input_shape"]), name=name)
    raise ModelLoadError(f"{path}: define `graph` (a gc.Graph), `build()` returning one, or "
                         "`model` (a layer such as gc.Sequential) and `input_shape`")


def random_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    """Standard normal floats; integer inputs (token ids, indices) 0 or 1, valid for any table
    of two rows or more; booleans at random."""
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        dtype = np.dtype(v.type.dtype)
        if dtype.kind in "iu":
            out.append(rng.integers(0, 2, v.type.shape).astype(dtype))
        elif dtype.kind == "b":
            out.append(rng.random(v.type.shape) < 0.5)
        else:
            out.append(rng.standard_normal(v.type.shape).astype(dtype))
    return out


# ----- commands ------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(threads=args.threads)


def cmd_show(args: argparse.Namespace) -> int:
    graph = load_model(args.model, args.input_shape, keep=args.keep_unsupported,
                       batch=args.batch)
    if args.opt:
        from . import optimize

        graph = optimize(graph, opt_level=args.opt, target=args.target,
                         print_before=args.print_before, print_after=args.print_after,
                         dump_dir=args.dump_dir, timings=args.timings)
    print(graph)
    if args.svg:
        from .svg import write_svg

        write_svg(graph, args.svg)
        print(f"wrote {args.svg}", file=sys.stderr)
    return 0


def _read_inputs(graph: Graph, specs: Sequence[str], seed: int) -> list[np.ndarray]:
    feeds = dict(zip([v.name for v in graph.inputs], random_inputs(graph, seed)))
    for i, spec in enumerate(specs):
        name, _, path = spec.rpartition("=") if "=" in spec else (None, "", spec)
        if name is None:
            if i >= len(graph.inputs):
                raise ModelLoadError(f"more --input files than the model's {len(graph.inputs)} inputs")
            name = graph.inputs[i].name
        if name not in feeds:
            raise ModelLoadError(f"--input {spec}: the model has no input {name!r}; "
                                 f"inputs are {list(feeds)}")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"--input {spec}: cannot read {path}: {e}") from None
    return list(feeds.values())


def cmd_run(args: argparse.Namespace) -> int:
    from . import compile

    graph = load_model(args.model, args.input_shape, keep=args.fallback is not None,
                       batch=args.batch)
    inputs = _read_inputs(graph, args.input, args.seed)
    options = {"threads": args.threads} if args.threads else {}
    if args.fallback:
        options["fallback"] = args.fallback
    cm = compile(graph, target=args.target, **options)
    outs = cm(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    np.set_printoptions(precision=5, suppress=True, threshold=64, edgeitems=4)
    for name, y in zip(cm.output_names, outs):
        print(f"{name}: {y.dtype}{list(y.shape)}")
        print(y)
        if args.output:
            np.save(args.output if len(outs) == 1 else f"{args.output}.{name}.npy", y)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from . import export_onnx

    graph = load_model(args.model, args.input_shape, batch=args.batch)
    export_onnx(graph, args.output)
    print(f"wrote {args.output} ({len(graph.nodes)} nodes)")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from graphcnn.backends.llvm import export_library

    graph = load_model(args.model, args.input_shape, batch=args.batch)
    header = export_library(graph, args.output, cpu=args.cpu, name=args.name,
                            opt_level=args.opt)
    print(f"wrote {args.output} and {header}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_model

    graph = load_model(args.model, args.input_shape, batch=args.batch)
    return bench_model(graph, threads=args.threads or 2, runs=args.runs, profile=not args.no_profile)


# ----- argument parsing ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphcnn", description="A compiler for convolutional networks.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo", help="the lesson network on built-in data, every target, a summary")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("show", help="print the textual IR (after passes with --opt N)")
    s.add_argument("model", help=".onnx file or DSL .py file")
    s.add_argument("--opt", type=int, default=0, choices=range(4), help="optimisation level")
    s.add_argument("--target", default=None, choices=TARGETS,
                   help="optimise for this target (llvm adds layout choices)")
    s.add_argument("--svg", help="also write a picture of the graph")
    s.add_argument("--print-before", default=None, help="pass name or 'all'")
    s.add_argument("--print-after", default=None, help="pass name or 'all'")
    s.add_argument("--dump-dir", default=None, help="write the IR after each pass here")
    s.add_argument("--timings", action="store_true", help="print per-pass timings")
    s.add_argument("--keep-unsupported", action="store_true",
                   help="show ONNX nodes without a graphcnn op as onnx_node instead of failing")
    _input_shape_option(s)
    s.set_defaults(fn=cmd_show)

    s = sub.add_parser("run", help="run on random or given input, print outputs")
    s.add_argument("model")
    s.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy")
    s.add_argument("--target", default="llvm", choices=TARGETS)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    s.add_argument("--output", "-o", help="save the output(s) as .npy")
    s.add_argument("--fallback", choices=["onnxruntime"], default=None,
                   help="run ONNX nodes without a native kernel on onnxruntime (llvm target)")
    _input_shape_option(s)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("export", help="a DSL model file to ONNX")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True)
    _input_shape_option(s)
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("compile", help="AOT native shared library + C header")
    s.add_argument("model", help=".onnx file or DSL .py file")
    s.add_argument("-o", "--output", required=True, metavar="LIB.so",
                   help="the shared library to write; the header goes beside it (LIB.h)")
    s.add_argument("--name", default=None,
                   help="prefix of every exported symbol and macro (NAME_run, "
                        "NAME_WORKSPACE_BYTES); default: the output file's name without lib")
    s.add_argument("--cpu", default="host", type=_cpu_name,
                   help="host, x86-64-v2, x86-64-v3 (portable: AVX2+FMA), x86-64-v4 "
                        "(AVX-512) or an LLVM CPU name (default: %(default)s)")
    s.add_argument("--opt", type=int, default=DEFAULT_OPT_LEVEL, choices=OPT_LEVELS,
                   help="optimisation level (default: %(default)s)")
    _input_shape_option(s)
    s.set_defaults(fn=cmd_compile)

    s = sub.add_parser("bench", help="graphcnn vs onnxruntime side by side, per-layer profile")
    s.add_argument("model")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--runs", type=int, default=30)
    s.add_argument("--no-profile", action="store_true")
    _input_shape_option(s)
    s.set_defaults(fn=cmd_bench)
    return p


def _cpu_name(text: str) -> str:
    """--cpu checked at parse time (LLVM aborts the process on a name it does not know)."""
    from graphcnn.backends.llvm.codegen import cpu_and_features

    try:
        cpu_and_features(text)
    except GraphcnnError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _input_shape_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   help="the shape of an input whose dims the ONNX file leaves symbolic "
                        "(repeatable)")
    s.add_argument("--batch", type=int, default=None, metavar="N",
                   help="re-bind the ONNX file's batch (static or symbolic) to N; refused "
                        "where the graph does not compute each sample on its own")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except GraphcnnError as e:
        print(f"graphcnn: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # unreadable paths, full disks: user-facing, not bugs
        print(f"graphcnn: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
