"""The `graphcnn` command line: demo, show, run, export, compile, debug, bench, cache, serve.

User mistakes (a missing file, a bad model, a wrong input) print one `graphcnn: error: ...` line
and exit 1; tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

from .dsl_file import load_dsl_file
from .errors import GraphcnnError, InputError, ModelLoadError, ShapeError
from .ir import Graph
from .opt_levels import DEFAULT_OPT_LEVEL, OPT_LEVELS

TARGETS = ("llvm", "onnxruntime", "reference")


# ----- loading models ------------------------------------------------------------------------
def load_model(path: str, input_shapes: Sequence[str] = (), keep: bool = False,
               batch: int | None = None) -> Graph:
    """An .onnx file, or a DSL .py file defining `graph`, `build()` or `model` + `input_shape`.

    `input_shapes`: --input-shape specs [NAME=]1x3x224x224 for an ONNX file's symbolic dims (a
    new first dim re-binds a static batch; NAME may be left out for a one-input model);
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

    if None in shapes:
        shapes[_only_input(path)] = shapes.pop(None)
    try:
        return from_onnx(path, input_shapes=shapes or None, batch=batch,
                         **({"unsupported": "keep"} if keep else {}))
    except (ShapeError, InputError) as e:
        raise type(e)(flag_words(str(e))) from None


def parse_input_shapes(specs: Sequence[str]) -> dict[str | None, tuple[int, ...]]:
    """[NAME=]1x3x224x224 (repeatable) -> {NAME: (1, 3, 224, 224)}; None for no NAME."""
    shapes: dict[str | None, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if (sep and not name) or not shape or min(shape) < 1:
            raise InputError(f"--input-shape {spec!r}: write [NAME=]DIMxDIMx... with positive "
                             f"dims, e.g. input=1x3x224x224")
        key = name if sep else None
        if key in shapes:
            raise InputError(f"--input-shape gives {key or 'the unnamed input'!r} twice")
        shapes[key] = shape
    return shapes


def _only_input(path: str) -> str:
    """The name of an ONNX file's one input (an --input-shape without NAME=)."""
    from .frontends.onnx_safety import load_model_split

    loaded = load_model_split(path)
    g = loaded.proto.graph
    loaded.release()
    initializers = {t.name for t in g.initializer}
    names = [vi.name for vi in g.input if vi.name not in initializers]
    if len(names) != 1:
        raise InputError(f"--input-shape without NAME=: {path} has {len(names)} inputs "
                         f"{names}; write NAME=DIMxDIMx...")
    return names[0]


_FLAG_WORDS = [  # from_onnx's words for input_shapes, in the CLI's flag
    (re.compile(r"input_shapes=\{'([^']*)': \(\.\.\.\)\}"), r"--input-shape \1=DIMxDIMx..."),
    (re.compile(r"input_shapes\['([^']*)'\] = \[([^\]]*)\]"),
     lambda m: f"--input-shape {m[1]}={'x'.join(m[2].split(', '))}"),
    (re.compile(r"\binput_shapes\b"), "--input-shape"),
]


def flag_words(message: str) -> str:
    """A from_onnx message that says `input_shapes` in terms of --input-shape."""
    for pattern, replacement in _FLAG_WORDS:
        message = pattern.sub(replacement, message)
    return message


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
    idle = [flag for flag, on in (("--timings", args.timings), ("--dump-dir", args.dump_dir),
                                  ("--print-after", args.print_after),
                                  ("--print-before", args.print_before)) if on]
    if idle and not args.opt:
        raise InputError(f"{', '.join(idle)} report on passes: add --opt N (1-3)")
    graph = load_model(args.model, args.input_shape, keep=args.keep_unsupported,
                       batch=args.batch)
    if args.opt:
        from graphcnn.passes import pass_names

        from . import optimize

        known = pass_names(args.opt, args.target)
        for flag, which in (("--print-before", args.print_before),
                            ("--print-after", args.print_after)):
            unknown = [n for n in (which or "").split(",") if n and n != "all" and n not in known]
            if unknown:
                raise InputError(f"{flag}: no pass {', '.join(map(repr, unknown))} at --opt "
                                 f"{args.opt}; passes: all, {', '.join(known)}")
        split = {f: w.split(",") if w and "," in w else w
                 for f, w in (("before", args.print_before), ("after", args.print_after))}
        graph = optimize(graph, opt_level=args.opt, target=args.target,
                         print_before=split["before"], print_after=split["after"],
                         dump_dir=args.dump_dir, timings=args.timings)
    if args.json:
        print(json.dumps({"name": graph.name, "inputs": _values_json(graph.inputs),
                          "outputs": _values_json(graph.outputs),
                          "nodes": [{"name": n.name, "op": n.op,
                                     "inputs": [v.name for v in n.inputs],
                                     "outputs": _values_json(n.outputs),
                                     "attrs": {k: repr(v) for k, v in n.attrs.items()}}
                                    for n in graph.nodes]}))
    else:
        print(graph)
    if args.svg:
        from .svg import write_svg

        write_svg(graph, args.svg)
        print(f"wrote {args.svg}", file=sys.stderr)
    if args.dot:
        from .dot import write_dot

        write_dot(graph, args.dot)
        print(f"wrote {args.dot}", file=sys.stderr)
    return 0


def _values_json(values) -> list[dict]:
    return [{"name": v.name, "shape": list(v.type.shape), "dtype": v.type.dtype} for v in values]


def _read_inputs(graph: Graph, specs: Sequence[str], seed: int) -> list[np.ndarray]:
    """Random inputs when no --input is given, else every input from a file: a partial set
    is an error naming the missing ones (never a silent random fill)."""
    feeds = dict(zip([v.name for v in graph.inputs], random_inputs(graph, seed)))
    given: set[str] = set()
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
        given.add(name)
    missing = [n for n in feeds if n not in given]
    if specs and missing:
        raise InputError(f"--input gives {sorted(given)} but not {missing}: give every input "
                         "(NAME=FILE.npy), or none for random data")
    return list(feeds.values())


def cmd_run(args: argparse.Namespace) -> int:
    from . import compile

    graph = load_model(args.model, args.input_shape, keep=args.fallback is not None,
                       batch=args.batch)
    inputs = _read_inputs(graph, args.input, args.seed)
    options = {"threads": args.threads} if args.threads else {}
    if args.fallback:
        options["fallback"] = args.fallback
    if args.precision != "fp32":
        options["precision"] = args.precision
    cm = compile(graph, target=args.target, **options)
    start = time.perf_counter()
    outs = cm(*inputs)
    seconds = time.perf_counter() - start
    outs = outs if isinstance(outs, tuple) else (outs,)
    if args.trace:
        _write_trace(cm.profile(*inputs), args.trace)
    paths = _output_paths(args.output, cm.output_names) if args.output else {}
    for name, y in zip(cm.output_names, outs):
        if name in paths:
            np.save(paths[name], y)
    if args.json:
        print(json.dumps({"target": cm.target, "latency_ms": seconds * 1e3, "outputs": [
            {"name": n, "dtype": str(y.dtype), "shape": list(y.shape), "file": paths.get(n),
             "values": y.tolist() if y.size <= 1024 else None}
            for n, y in zip(cm.output_names, outs)]}))
        return 0
    np.set_printoptions(precision=5, suppress=True, threshold=64, edgeitems=4)
    for name, y in zip(cm.output_names, outs):
        print(f"{name}: {y.dtype}{list(y.shape)}")
        print(y)
    print(f"latency: {seconds * 1e3:.3f} ms ({cm.target}, first call)")
    return 0


def _write_trace(profile, path: str) -> None:
    """A per-layer profile as a Chrome trace, or as an SVG bar chart for a .svg path
    (graphcnn/profiling.py), noted on stderr."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    if path.lower().endswith(".svg"):
        profile.write_chart(path)
        print(f"wrote {path} (a bar chart of the slowest of {len(profile)} layers, "
              f"{profile.target})", file=sys.stderr)
        return
    profile.write_trace(path)
    print(f"wrote {path} ({len(profile)} layers, {profile.target}; open in ui.perfetto.dev)",
          file=sys.stderr)


def _output_paths(output: str, names: Sequence[str]) -> dict[str, str]:
    """-o FILE.npy for one output; -o DIR (created) for several: DIR/<name>.npy each."""
    if len(names) == 1 and not os.path.isdir(output):
        return {names[0]: output}
    os.makedirs(output, exist_ok=True)
    return {n: os.path.join(output, re.sub(r"[^A-Za-z0-9_.-]", "_", n) + ".npy") for n in names}


def cmd_export(args: argparse.Namespace) -> int:
    from . import export_onnx

    graph = load_model(args.model, args.input_shape, batch=args.batch)
    parent = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {args.output}: directory {parent} does not exist")
    export_onnx(graph, args.output)
    print(f"wrote {args.output} ({len(graph.nodes)} nodes)")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from graphcnn.backends.llvm import export_library

    graph = load_model(args.model, args.input_shape, batch=args.batch)
    header = export_library(graph, args.output, cpu=args.cpu, name=args.name,
                            opt_level=args.opt, precision=args.precision)
    print(f"wrote {args.output} and {header}")
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    """Exit 0 when the target agrees with the reference within --tol, 1 when it diverges
    (like diff): the report names the first bad pass prefix and the first bad node."""
    from .debug import debug_model

    if not args.tol > 0:
        raise InputError(f"--tol must be positive, got {args.tol}")
    graph = load_model(args.model, args.input_shape, batch=args.batch)
    inputs = _read_inputs(graph, args.input, args.seed)
    report = debug_model(graph, inputs, target=args.target, tol=args.tol, opt_level=args.opt)
    print(report.format())
    return 0 if report.agrees else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_model

    graph = load_model(args.model, args.input_shape, batch=args.batch)
    if args.json:
        from .bench import compare_with_onnxruntime

        row = compare_with_onnxruntime(graph, threads=args.threads, runs=args.runs,
                                       precision=args.precision)
        report = {k: v for k, v in row.items() if isinstance(v, (int, float, str, type(None)))}
        if args.precision != "fp32":
            from . import compile
            from .bench import precision_agreement

            fp32 = compile(graph, target="llvm", threads=args.threads)
            report["agreement"] = precision_agreement(row["model"], fp32, args.samples)
        if not args.no_profile or args.trace:
            profile = row["model"].profile(*row["inputs"])
            if args.trace:
                _write_trace(profile, args.trace)
            if not args.no_profile:
                report["profile"] = list(profile)
        print(json.dumps(report))
        return 0
    return bench_model(graph, threads=args.threads or 2, runs=args.runs,
                       profile=not args.no_profile, precision=args.precision,
                       samples=args.samples,
                       on_profile=(lambda p: _write_trace(p, args.trace)) if args.trace else None)


def cmd_cache_info(args: argparse.Namespace) -> int:
    from graphcnn.backends.llvm.cache import cache_info
    from graphcnn.budgets import human

    info = cache_info()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"cache directory: {info['dir']}")
    print(f"entries: {info['entries']}, {human(info['total_bytes'])} "
          f"({info['total_bytes']} bytes) of {human(info['max_bytes'])} (GRAPHCNN_CACHE_MAX)")
    if info["incomplete"]:
        print(f"incomplete entries (stores under way or interrupted): {info['incomplete']}")
    for e in info["largest"]:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["last_used"]))
        print(f"  {human(e['bytes']):>10}  {e['key'][:16]}  last used {used}")
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from graphcnn.backends.llvm.cache import clear_cache
    from graphcnn.budgets import human

    done = clear_cache()
    print(f"freed {human(done['freed_bytes'])} ({done['freed_bytes']} bytes, "
          f"{done['entries']} entries) in {done['dir']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    if args.max_batch < 1 or args.workers < 1 or args.queue_size < 1 or args.max_delay_ms < 0 \
            or args.timeout_s <= 0:
        raise InputError("--max-batch, --workers and --queue-size must be >= 1, "
                         "--max-delay-ms >= 0 and --timeout-s > 0")
    serve(args.model, name=args.name, host=args.host, port=args.port, target=args.target,
          threads=args.threads, log_level=args.log_level, max_batch=args.max_batch,
          max_delay_ms=args.max_delay_ms, workers=args.workers, queue_size=args.queue_size,
          timeout_s=args.timeout_s, max_body_bytes=int(args.max_body_mb * (1 << 20)),
          warmup=not args.lazy, adaptive_delay=not args.fixed_delay, precision=args.precision)
    return 0


# ----- argument parsing ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    p = argparse.ArgumentParser(prog="graphcnn", description="A compiler for convolutional networks.")
    p.add_argument("--version", action="version", version=f"graphcnn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo", help="the lesson network on built-in data, every target, a summary")
    s.add_argument("--threads", type=_positive, default=None,
                   help="worker threads (default: all cores)")
    _quiet_option(s)
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("show", help="print the textual IR (after passes with --opt N)")
    s.add_argument("model", help=".onnx file or DSL .py file")
    s.add_argument("--opt", type=int, default=0, choices=range(4),
                   help="run the pass pipeline at this level first (default: %(default)s, none)")
    s.add_argument("--target", default=None, choices=TARGETS,
                   help="optimise for this target (llvm adds layout choices)")
    s.add_argument("--svg", metavar="FILE.svg", help="also write a picture of the graph")
    s.add_argument("--dot", metavar="FILE.dot",
                   help="also write the graph as Graphviz source (dot -Tsvg FILE.dot)")
    s.add_argument("--json", action="store_true",
                   help="print the graph as JSON (nodes, ops, attrs, value types)")
    s.add_argument("--print-before", default=None, metavar="PASS[,PASS]",
                   help="print the IR before these passes ('all' for every one; needs --opt)")
    s.add_argument("--print-after", default=None, metavar="PASS[,PASS]",
                   help="print the IR after these passes ('all' for every one; needs --opt)")
    s.add_argument("--dump-dir", default=None, help="write the IR after each pass here")
    s.add_argument("--timings", action="store_true", help="print per-pass timings")
    s.add_argument("--keep-unsupported", action="store_true",
                   help="show ONNX nodes without a graphcnn op as onnx_node instead of failing")
    _input_shape_option(s)
    _quiet_option(s)
    s.set_defaults(fn=cmd_show)

    s = sub.add_parser("run", help="run on random or given input, print outputs")
    s.add_argument("model", help=".onnx file or DSL .py file")
    s.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy",
                   help="an input from a .npy file (repeatable; all inputs or none: "
                        "without --input every input is random)")
    s.add_argument("--target", default="llvm", choices=TARGETS,
                   help="where to run (default: %(default)s)")
    s.add_argument("--threads", type=_positive, default=None,
                   help="worker threads (default: all cores)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed for random inputs (default: %(default)s)")
    s.add_argument("--output", "-o", metavar="FILE.npy|DIR",
                   help="save the output as FILE.npy, or several outputs as DIR/<name>.npy")
    s.add_argument("--json", action="store_true",
                   help="print outputs and latency as one JSON object")
    s.add_argument("--fallback", choices=["onnxruntime"], default=None,
                   help="run ONNX nodes without a native kernel on onnxruntime (llvm target)")
    _precision_option(s)
    _trace_option(s)
    _input_shape_option(s)
    _quiet_option(s)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("export", help="a DSL model file to ONNX")
    s.add_argument("model", help="DSL .py file (or an .onnx file to re-export)")
    s.add_argument("-o", "--output", required=True, metavar="FILE.onnx",
                   help="the ONNX file to write")
    _input_shape_option(s)
    _quiet_option(s)
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
    _precision_option(s)
    _input_shape_option(s)
    _quiet_option(s)
    s.set_defaults(fn=cmd_compile)

    s = sub.add_parser("debug", help="find the pass and the node where a target leaves the "
                                     "reference (exit 1 when it does)")
    s.add_argument("model", help=".onnx file or DSL .py file")
    s.add_argument("--target", default="llvm", choices=TARGETS,
                   help="the target to check against the reference (default: %(default)s)")
    s.add_argument("--tol", type=float, default=1e-4,
                   help="relative L2 tolerance (default: %(default)s)")
    s.add_argument("--opt", type=int, default=None, choices=OPT_LEVELS,
                   help="the target's optimisation level (default: gc.compile's)")
    s.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy",
                   help="an input from a .npy file (repeatable; default: seeded random)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed for random inputs (default: %(default)s)")
    _input_shape_option(s)
    _quiet_option(s)
    s.set_defaults(fn=cmd_debug)

    s = sub.add_parser("bench", help="graphcnn vs onnxruntime side by side, per-layer profile")
    s.add_argument("model", help=".onnx file or DSL .py file")
    s.add_argument("--threads", type=_positive, default=2,
                   help="threads for both runtimes (default: %(default)s)")
    s.add_argument("--runs", type=_positive, default=30,
                   help="timed runs per runtime (default: %(default)s)")
    s.add_argument("--no-profile", action="store_true", help="skip the per-layer profile")
    s.add_argument("--json", action="store_true",
                   help="print the timings (and the profile) as one JSON object")
    _precision_option(s)
    s.add_argument("--samples", type=_positive, default=100,
                   help="with --precision bf16: random inputs over which its outputs are "
                        "compared with float32's (default: %(default)s)")
    _trace_option(s)
    _input_shape_option(s)
    _quiet_option(s)
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("cache", help="the llvm compile cache: info, clear")
    actions = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("info", help="directory, entries, total size, limit, largest entries")
    a.add_argument("--json", action="store_true", help="print it as one JSON object")
    a.set_defaults(fn=cmd_cache_info)
    a = actions.add_parser("clear", help="delete every entry (other files stay)")
    a.set_defaults(fn=cmd_cache_clear)

    s = sub.add_parser("serve", help="serve over HTTP: KServe v2 protocol, dynamic batching, "
                                     "/metrics (docs/serving.md)")
    s.add_argument("model", help=".onnx file, DSL .py file or saved model (.gcm)")
    s.add_argument("--name", default=None, help="the model's name in URLs (default: file stem)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--target", default="llvm", choices=TARGETS)
    s.add_argument("--threads", type=int, default=None, help="native threads per call")
    s.add_argument("--max-batch", type=int, default=32,
                   help="samples per native call at most (compiled at powers of two up to it)")
    s.add_argument("--max-delay-ms", type=float, default=2.0,
                   help="how long the first request of a batch waits for others (only while "
                        "requests come concurrently, unless --fixed-delay)")
    s.add_argument("--fixed-delay", action="store_true",
                   help="wait --max-delay-ms for every batch, even for a lone client")
    _precision_option(s)
    s.add_argument("--workers", type=int, default=1, help="native calls in flight at once")
    s.add_argument("--queue-size", type=int, default=256,
                   help="requests waiting at most; beyond it 503 with Retry-After")
    s.add_argument("--timeout-s", type=float, default=30.0,
                   help="per-request deadline; beyond it 504")
    s.add_argument("--max-body-mb", type=float, default=64.0, help="larger bodies get 413")
    s.add_argument("--lazy", action="store_true",
                   help="compile each batch size on first use instead of at startup")
    s.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(fn=cmd_serve)
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _cpu_name(text: str) -> str:
    """--cpu checked at parse time (LLVM aborts the process on a name it does not know)."""
    from graphcnn.backends.llvm.codegen import cpu_and_features

    try:
        cpu_and_features(text)
    except GraphcnnError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _trace_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--trace", metavar="OUT.json|OUT.svg", default=None,
                   help="write the per-layer profile as a Chrome trace (Perfetto, "
                        "chrome://tracing), or as a bar chart when the name ends in .svg")


def _precision_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="llvm: bf16 computes convs on bf16 activations and weights with "
                        "float32 sums where the CPU has AVX512-BF16 (default: %(default)s)")


def _quiet_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--quiet", "-q", action="store_true",
                   help="no progress line (shown on stderr only when it is a terminal)")


def _input_shape_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]1x3x224x224",
                   help="the shape of an ONNX file's input: binds its symbolic dims, and a new "
                        "first dim re-binds a static batch (repeatable; NAME may be left out "
                        "for a one-input model)")
    s.add_argument("--batch", type=int, default=None, metavar="N",
                   help="re-bind the ONNX file's batch (static or symbolic) to N; refused "
                        "where the graph does not compute each sample on its own")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as `graphcnn: warning: ...`, without the source line Python prints."""
    print(f"graphcnn: warning: {category.__name__}: {flag_words(str(message))}",
          file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from .progress import TerminalProgress, reporting

    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        # import, passes and kernel compiles on one stderr line, when it is a terminal
        with reporting(None if getattr(args, "quiet", False) else TerminalProgress()):
            return args.fn(args)
    except BrokenPipeError:  # `graphcnn show m.onnx | head -1`: the reader left, so do we
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
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
