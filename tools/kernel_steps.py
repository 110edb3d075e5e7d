"""Record the llvm backend's kernel choices for the model zoo, or compare them with a record.

    python tools/kernel_steps.py record steps.json [--suite small|imagenet|all]
    python tools/kernel_steps.py compare steps.json [--suite ...]

For every model (graphcnn.models and tests/zoo_onnx.py, small and 224x224 ImageNet ones) and
a few compile options, gc.compile runs up to the end of lowering (no LLVM code generation):
the record holds every task's (node, op, task count, work), every kernels/ plan with all its
parameters (its repr: plans are frozen dataclasses) and the workspace and weights bytes. A
refactoring of the backend that must not change performance compares the two records.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import graphcnn as gc
from graphcnn import models


class _Lowered(Exception):
    def __init__(self, record: dict):
        self.record = record


def _install_spies(plans: list) -> None:
    """Stop gc.compile after lowering (no LLVM), and log every plan an emitter asks for."""
    from graphcnn.backends.llvm import codegen, lower
    from graphcnn.backends.llvm.emit.base import EmitContext

    class NoBuilder:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, *args, **kwargs):
            pass

        def close(self):
            pass

    real_lower, real_kernel = lower.lower, EmitContext.kernel

    def spy_lower(*args, **kwargs):
        kwargs.pop("on_kernel_module", None)
        lowered = real_lower(*args, **kwargs)
        raise _Lowered({"kernels": [[k["node"], k["op"], k["tasks"], k["work"]]
                                    for k in lowered.kernels],
                        "workspace_bytes": lowered.workspace_bytes,
                        "weights_bytes": lowered.weights_bytes})

    def spy_kernel(self, plan, name):
        plans.append([name, type(plan).__name__, repr(plan)])
        return real_kernel(self, plan, name)

    codegen.ObjectBuilder = NoBuilder
    lower.lower = spy_lower
    EmitContext.kernel = spy_kernel


def _onnx(build: Callable) -> Callable:
    return lambda: gc.from_onnx(build())


def model_zoo(suite: str) -> dict[str, Callable]:
    import zoo_onnx

    out: dict[str, Callable] = {}
    if suite in ("small", "all"):
        out["lenet5_b1"] = lambda: models.lenet5(batch=1)
        out["lenet5_b64"] = lambda: models.lenet5(batch=64)
        out["vgg_cifar_b1"] = lambda: models.vgg_cifar(batch=1)
        out["vgg_cifar_b16"] = lambda: models.vgg_cifar(batch=16)
        for name, build in models.IMAGENET.items():
            out[f"{name}_small"] = lambda build=build: build(size=64, width=0.25)
        for name, build in zoo_onnx.SMALL.items():
            out[f"onnx_{name}_small"] = _onnx(build)
    if suite in ("imagenet", "all"):
        for name, build in models.IMAGENET.items():
            out[name] = build
        for name, build in zoo_onnx.MODELS.items():
            out[f"onnx_{name}"] = _onnx(lambda build=build: build(size=224, width=1.0))
    return out


# compile options: the default everywhere, the others on the small models only
OPTIONS = {"default": {}, "O0": {"opt_level": 0}, "O1": {"opt_level": 1},
           "O3": {"opt_level": 3}, "plain": {"opt_level": 0, "rewrites": False},
           "generic": {"cpu": "generic"}, "profile": {"profile": True}}


def record(suite: str) -> dict:
    plans: list = []
    _install_spies(plans)
    out = {}
    for name, build in model_zoo(suite).items():
        small = "small" in name or name.startswith(("lenet", "vgg_cifar"))
        graph = build()
        for label, options in OPTIONS.items():
            if label != "default" and not small:
                continue
            plans.clear()
            try:
                gc.compile(graph, target="llvm", cache=False, **options)
            except _Lowered as done:
                entry = out[f"{name}/{label}"] = {**done.record, "plans": list(plans)}
            else:
                raise RuntimeError("gc.compile did not lower")
            print(f"{name}/{label}: {len(entry['kernels'])} tasks, {len(plans)} plans, "
                  f"workspace {entry['workspace_bytes']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("path")
    parser.add_argument("--suite", default="all", choices=("small", "imagenet", "all"))
    args = parser.parse_args()
    os.environ.setdefault("GRAPHCNN_CACHE_DIR", str(ROOT / ".cache-gc"))
    got = record(args.suite)
    if args.action == "record":
        Path(args.path).write_text(json.dumps(got, indent=1))
        return
    want = json.loads(Path(args.path).read_text())
    bad = [key for key in want if key in got and json.loads(json.dumps(got[key])) != want[key]]
    missing = [key for key in want if key not in got]
    for key in bad:
        w, g = want[key], json.loads(json.dumps(got[key]))
        for field in w:
            if w[field] != g[field]:
                print(f"DIFFERS {key} {field}")
                if isinstance(w[field], list):
                    for a, b in zip(w[field], g[field]):
                        if a != b:
                            print(f"  want {a}\n  got  {b}")
                            break
                    if len(w[field]) != len(g[field]):
                        print(f"  {len(w[field])} vs {len(g[field])} entries")
    print(f"{len(got)} configurations compared, {len(bad)} differ, {len(missing)} missing")
    sys.exit(1 if bad or missing else 0)


if __name__ == "__main__":
    main()
