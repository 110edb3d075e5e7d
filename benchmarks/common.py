"""Shared benchmark helpers: the DSL models the llvm benchmark times, an onnxruntime session for
a graph, and alternating median timing.

The onnxruntime side uses `gc.to_onnx` when the ONNX exporter is available, else a small
exporter for the ops these models use (conv, relu, pools, gemm, flatten, softmax, add,
batch_norm), so the benchmark runs on any checkout.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

import graphcnn as gc
from graphcnn.ir import Graph


# ----- models (DSL) ------------------------------------------------------------------------------
def lenet5(batch: int = 1, seed: int = 0) -> Graph:
    gc.manual_seed(seed)
    return gc.Sequential(
        gc.Conv2d(1, 6, 5, padding=2), gc.ReLU(), gc.MaxPool2d(2),
        gc.Conv2d(6, 16, 5), gc.ReLU(), gc.AvgPool2d(2),
        gc.Flatten(), gc.Dense(16 * 5 * 5, 120), gc.ReLU(), gc.Dense(120, 84), gc.ReLU(),
        gc.Dense(84, 10), gc.Softmax(),
    ).build((batch, 1, 28, 28))


def _conv_bn(x, cin: int, cout: int, k: int, stride: int, relu: bool = True):
    y = gc.BatchNorm2d(cout)(gc.Conv2d(cin, cout, k, stride=stride, padding=k // 2,
                                       bias=False)(x))
    return gc.ReLU()(y) if relu else y


def resnet18(batch: int = 1, size: int = 224, seed: int = 0) -> Graph:
    """ResNet-18 (basic blocks 2-2-2-2, 64..512 channels, 224x224, 1000 classes)."""
    gc.manual_seed(seed)
    b = gc.GraphBuilder(f"resnet18_b{batch}")
    x = b.input("input", (batch, 3, size, size))
    x = gc.MaxPool2d(3, 2, padding=1)(_conv_bn(x, 3, 64, 7, 2))
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512)):
        for i in range(2):
            stride = 2 if i == 0 and stage > 0 else 1
            y = _conv_bn(_conv_bn(x, cin, c, 3, stride), c, c, 3, 1, relu=False)
            short = x if stride == 1 and cin == c else _conv_bn(x, cin, c, 1, stride, relu=False)
            x, cin = gc.ReLU()(y + short), c
    x = gc.Flatten()(gc.GlobalAvgPool2d()(x))
    return b.build(gc.Softmax()(gc.Dense(512, 1000)(x)))


# ----- onnxruntime -------------------------------------------------------------------------------
def _mini_onnx(graph: Graph):
    import onnx
    from onnx import helper, numpy_helper

    nodes, inits = [], []
    for v in graph.constants:
        inits.append(numpy_helper.from_array(np.asarray(v.data, np.float32), v.name))
    for n in graph.nodes:
        a, ins, outs = n.attrs, [v.name for v in n.inputs], [v.name for v in n.outputs]
        if n.op == "conv":
            nodes.append(helper.make_node("Conv", ins, outs, strides=a["strides"], pads=a["pads"],
                                          dilations=a["dilations"], group=a["groups"]))
        elif n.op in ("max_pool", "avg_pool"):
            extra = {"count_include_pad": int(a["count_include_pad"])} if n.op == "avg_pool" else {}
            nodes.append(helper.make_node("MaxPool" if n.op == "max_pool" else "AveragePool",
                                          ins, outs, kernel_shape=a["kernel_shape"],
                                          strides=a["strides"], pads=a["pads"],
                                          ceil_mode=int(a["ceil_mode"]), **extra))
        elif n.op == "gemm":
            nodes.append(helper.make_node("Gemm", ins, outs, transA=a["transA"], transB=a["transB"],
                                          alpha=a["alpha"], beta=a["beta"]))
        elif n.op == "batch_norm":
            nodes.append(helper.make_node("BatchNormalization", ins, outs, epsilon=a["epsilon"]))
        elif n.op in ("flatten", "softmax"):
            nodes.append(helper.make_node(n.op.capitalize(), ins, outs, axis=a["axis"]))
        else:
            simple = {"relu": "Relu", "add": "Add", "global_avg_pool": "GlobalAveragePool"}
            nodes.append(helper.make_node(simple[n.op], ins, outs))
    info = lambda v: helper.make_tensor_value_info(v.name, onnx.TensorProto.FLOAT, v.type.shape)
    model = helper.make_model(helper.make_graph(nodes, graph.name, [info(v) for v in graph.inputs],
                                                [info(v) for v in graph.outputs], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def onnxruntime_runner(graph: Graph, threads: int) -> Callable[..., np.ndarray]:
    import onnxruntime as ort

    try:
        model = gc.to_onnx(graph)
    except ImportError:  # the exporter is not there yet on this checkout
        model = _mini_onnx(graph)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return lambda *xs: sess.run(None, dict(zip(names, xs)))[0]


def time_alternating(runners: dict[str, Callable[[], object]], runs: int = 30, warmup: int = 3,
                     budget_s: float = 60.0) -> dict[str, float]:
    """Median seconds per runner; runners alternate (order rotated each round)."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            runners[name]()
            samples[name].append(time.perf_counter() - t0)
        if i >= 4 and time.perf_counter() - start > budget_s:
            break
    return {n: statistics.median(s) for n, s in samples.items()}
