"""Classic CNN architectures as ONNX models built with onnx.helper (random, seeded weights).

Each builder takes `size` (input resolution), `width` (channel multiplier, 1.0 = published),
`classes`, `batch` (an int, or a string for a symbolic batch dim) and `seed`, so tests build
small versions and benchmarks the full 224x224 ImageNet ones, e.g. `resnet(size=224, width=1)`.
They deliberately use different opsets and exporter idioms (Shape/Gather/Concat flatten, Reshape
with 0/-1, Softmax before and after opset 13, Dropout ratio as attribute or input, Clip bounds as
inputs, auto_pad, ceil_mode, LRN, channel shuffle as Reshape+Transpose+Reshape) so that importing
them exercises the importer the way real exported files do.

    from zoo_onnx import MODELS
    model = MODELS["resnet"](size=224, width=1.0)      # onnx.ModelProto
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx import helper as h


class Net:
    """A tiny onnx.helper front end: adds nodes and He-initialised weights, names everything."""

    def __init__(self, name: str, opset: int, seed: int):
        self.name, self.opset = name, opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, array: np.ndarray, base: str = "c") -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values: Sequence[int], base: str = "shape") -> str:
        return self.const(np.array(values, dtype=np.int64), base)

    def node(self, op: str, inputs: Sequence[str], outputs: int = 1, **attrs) -> str:
        name = self.fresh(op.lower())
        outs = [f"{name}_out"] + [f"{name}_out{i}" for i in range(1, outputs)]
        self.nodes.append(h.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs[0]

    # ----- layers ----------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, k: int, s: int = 1, p: int | None = None,
             groups: int = 1, bias: bool = True, auto_pad: str | None = None) -> str:
        fan_in = cin // groups * k * k
        w = self.const((self.rng.standard_normal((cout, cin // groups, k, k)) *
                        np.sqrt(2.0 / fan_in)).astype(np.float32), "w")
        ins = [x, w]
        if bias:
            ins.append(self.const(self.rng.uniform(-0.1, 0.1, cout).astype(np.float32), "b"))
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "group": groups}
        if auto_pad:
            attrs["auto_pad"] = auto_pad
        else:
            p = k // 2 if p is None else p
            attrs["pads"] = [p, p, p, p]
        return self.node("Conv", ins, **attrs)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        params = [r.uniform(0.5, 1.5, c), r.uniform(-0.2, 0.2, c), r.uniform(-0.2, 0.2, c),
                  r.uniform(0.5, 1.5, c)]
        names = [self.const(p.astype(np.float32), n) for p, n in
                 zip(params, ("scale", "bias", "mean", "var"))]
        attrs = {"epsilon": 1e-5}
        if self.opset < 9:
            attrs["spatial"] = 1
        return self.node("BatchNormalization", [x] + names, **attrs)

    def relu(self, x: str) -> str:
        return self.node("Relu", [x])

    def clip(self, x: str, lo: float, hi: float) -> str:
        if self.opset < 11:
            return self.node("Clip", [x], min=lo, max=hi)
        bounds = [self.const(np.array(v, np.float32), n) for v, n in ((lo, "min"), (hi, "max"))]
        return self.node("Clip", [x] + bounds)

    def conv_bn_relu(self, x: str, cin: int, cout: int, k: int, s: int = 1, groups: int = 1,
                     relu: bool = True) -> str:
        y = self.bn(self.conv(x, cin, cout, k, s, groups=groups, bias=False), cout)
        return self.relu(y) if relu else y

    def max_pool(self, x: str, k: int, s: int, p: int = 0, ceil: bool = False) -> str:
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4}
        if ceil:
            attrs["ceil_mode"] = 1
        return self.node("MaxPool", [x], **attrs)

    def avg_pool(self, x: str, k: int, s: int, p: int = 0, count_include_pad: int = 0) -> str:
        return self.node("AveragePool", [x], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
                         count_include_pad=count_include_pad)

    def dense(self, x: str, fin: int, fout: int) -> str:
        """Gemm with transB=1 (PyTorch's Linear layout)."""
        w = self.const((self.rng.standard_normal((fout, fin)) / np.sqrt(fin)).astype(np.float32),
                       "fc_w")
        b = self.const(self.rng.uniform(-0.1, 0.1, fout).astype(np.float32), "fc_b")
        return self.node("Gemm", [x, w, b], transB=1)

    def dropout(self, x: str, ratio: float = 0.5) -> str:
        if self.opset < 12:
            return self.node("Dropout", [x], ratio=ratio)
        return self.node("Dropout", [x, self.const(np.array(ratio, np.float32), "ratio")])

    def flatten_like_pytorch(self, x: str) -> str:
        """x.view(x.size(0), -1) as the TorchScript exporter writes it."""
        shape = self.node("Shape", [x])
        n = self.node("Gather", [shape, self.const(np.array(0, np.int64), "idx")], axis=0)
        if self.opset >= 13:
            n = self.node("Unsqueeze", [n, self.ints([0], "axes")])
        else:
            n = self.node("Unsqueeze", [n], axes=[0])
        target = self.node("Concat", [n, self.ints([-1], "minus1")], axis=0)
        return self.node("Reshape", [x, target])

    def softmax(self, x: str) -> str:
        return self.node("Softmax", [x], axis=1 if self.opset < 13 else -1)

    def model(self, x_shape: Sequence[int | str], output: str) -> onnx.ModelProto:
        graph = h.make_graph(self.nodes, self.name,
                             [h.make_tensor_value_info("input", TensorProto.FLOAT, list(x_shape))],
                             [h.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                             initializer=self.inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", self.opset)],
                             producer_name="graphcnn-tests")
        model.ir_version = min(model.ir_version, 8)  # loadable by older onnxruntime too
        return model


def _ch(c: int, width: float) -> int:
    return max(4, round(c * width))


def alexnet(size: int = 224, width: float = 1.0, classes: int = 1000, batch: int | str = 1,
            seed: int = 0) -> onnx.ModelProto:
    """AlexNet (torchvision layout, LRN as in the paper), opset 9: Flatten, Dropout-7 ratio."""
    n = Net("alexnet", 9, seed)
    c = [_ch(v, width) for v in (64, 192, 384, 256, 256)]
    x = n.relu(n.conv("input", 3, c[0], 11, 4, 2))
    x = n.max_pool(n.node("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=2.0), 3, 2)
    x = n.relu(n.conv(x, c[0], c[1], 5, p=2))
    x = n.max_pool(n.node("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=2.0), 3, 2)
    x = n.relu(n.conv(x, c[1], c[2], 3))
    x = n.relu(n.conv(x, c[2], c[3], 3))
    x = n.max_pool(n.relu(n.conv(x, c[3], c[4], 3)), 3, 2)
    side = _pool_out(_pool_out(_pool_out((size + 4 - 11) // 4 + 1, 3, 2), 3, 2), 3, 2)
    hidden = _ch(4096, width)
    x = n.node("Flatten", [x], axis=1)
    x = n.relu(n.dense(n.dropout(x), c[4] * side * side, hidden))
    x = n.relu(n.dense(n.dropout(x), hidden, hidden))
    return n.model((batch, 3, size, size), n.softmax(n.dense(x, hidden, classes)))


def _pool_out(size: int, k: int, s: int, p: int = 0, ceil: bool = False) -> int:
    span = size + 2 * p - k
    return (-(-span // s) if ceil else span // s) + 1


VGG_CONFIGS = {"vgg11": (1, 1, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def vgg(size: int = 224, width: float = 1.0, classes: int = 1000, batch: int | str = 1,
        seed: int = 0, config: str = "vgg16") -> onnx.ModelProto:
    """VGG, opset 13: the TorchScript flatten (Shape/Gather/Unsqueeze/Concat/Reshape),
    Dropout-13 with a ratio input, Softmax-13."""
    n = Net(config, 13, seed)
    x, cin = "input", 3
    for reps, c in zip(VGG_CONFIGS[config], (64, 128, 256, 512, 512)):
        c = _ch(c, width)
        for _ in range(reps):
            x, cin = n.relu(n.conv(x, cin, c, 3)), c
        x = n.max_pool(x, 2, 2)
    side = size // 32
    hidden = _ch(4096, width)
    x = n.flatten_like_pytorch(x)
    x = n.dropout(n.relu(n.dense(x, cin * side * side, hidden)))
    x = n.dropout(n.relu(n.dense(x, hidden, hidden)))
    return n.model((batch, 3, size, size), n.softmax(n.dense(x, hidden, classes)))


def resnet(size: int = 224, width: float = 1.0, classes: int = 1000, batch: int | str = 1,
           seed: int = 0, blocks: Sequence[int] = (2, 2, 2, 2)) -> onnx.ModelProto:
    """ResNet with basic blocks (ResNet-18 by default), opset 11: BN, residual Add,
    GlobalAveragePool, Flatten, Gemm."""
    n = Net("resnet", 11, seed)
    c0 = _ch(64, width)
    x = n.conv_bn_relu("input", 3, c0, 7, 2)
    x = n.max_pool(x, 3, 2, 1)
    cin = c0
    for stage, reps in enumerate(blocks):
        c = _ch(64 * 2 ** stage, width)
        for i in range(reps):
            s = 2 if stage > 0 and i == 0 else 1
            y = n.conv_bn_relu(x, cin, c, 3, s)
            y = n.conv_bn_relu(y, c, c, 3, relu=False)
            short = x if s == 1 and cin == c else n.bn(n.conv(x, cin, c, 1, s, 0, bias=False), c)
            x, cin = n.relu(n.node("Add", [y, short])), c
    x = n.node("Flatten", [n.node("GlobalAveragePool", [x])])
    return n.model((batch, 3, size, size), n.dense(x, cin, classes))


def inception(size: int = 224, width: float = 1.0, classes: int = 1000, batch: int | str = 1,
              seed: int = 0) -> onnx.ModelProto:
    """GoogLeNet (Inception v1), opset 10: MaxPool ceil_mode, LRN, four-branch Concat,
    Dropout-10, Softmax-1 semantics."""
    n = Net("inception", 10, seed)
    w = lambda c: _ch(c, width)
    x = n.relu(n.conv("input", 3, w(64), 7, 2, 3))
    x = n.node("LRN", [n.max_pool(x, 3, 2, ceil=True)], size=5)
    x = n.relu(n.conv(x, w(64), w(64), 1, p=0))
    x = n.relu(n.conv(x, w(64), w(192), 3))
    x = n.max_pool(n.node("LRN", [x], size=5), 3, 2, ceil=True)
    cin = w(192)
    modules = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "pool",
               (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64),
               (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
               (256, 160, 320, 32, 128, 128), "pool", (256, 160, 320, 32, 128, 128),
               (384, 192, 384, 48, 128, 128)]
    for m in modules:
        if m == "pool":
            x = n.max_pool(x, 3, 2, ceil=True)
            continue
        c1, c3r, c3, c5r, c5, cp = (w(v) for v in m)
        b1 = n.relu(n.conv(x, cin, c1, 1, p=0))
        b2 = n.relu(n.conv(n.relu(n.conv(x, cin, c3r, 1, p=0)), c3r, c3, 3))
        b3 = n.relu(n.conv(n.relu(n.conv(x, cin, c5r, 1, p=0)), c5r, c5, 5))
        b4 = n.relu(n.conv(n.max_pool(x, 3, 1, 1), cin, cp, 1, p=0))
        x, cin = n.node("Concat", [b1, b2, b3, b4], axis=1), c1 + c3 + c5 + cp
    x = n.dropout(n.node("Flatten", [n.node("GlobalAveragePool", [x])]), 0.4)
    return n.model((batch, 3, size, size), n.softmax(n.dense(x, cin, classes)))


def squeezenet(size: int = 224, width: float = 1.0, classes: int = 1000, batch: int | str = 1,
               seed: int = 0) -> onnx.ModelProto:
    """SqueezeNet 1.1, opset 12: fire modules (Concat of 1x1 and 3x3 expands), a classifier
    conv, GlobalAveragePool, Reshape with a 0 dim, Dropout-12 with a ratio input."""
    n = Net("squeezenet", 12, seed)
    w = lambda c: _ch(c, width)
    x = n.max_pool(n.relu(n.conv("input", 3, w(64), 3, 2, 0)), 3, 2, ceil=True)
    cin = w(64)
    fires = [(16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192),
             (64, 256), (64, 256)]
    for f in fires:
        if f == "pool":
            x = n.max_pool(x, 3, 2, ceil=True)
            continue
        sq, ex = w(f[0]), w(f[1])
        s = n.relu(n.conv(x, cin, sq, 1, p=0))
        x = n.node("Concat", [n.relu(n.conv(s, sq, ex, 1, p=0)), n.relu(n.conv(s, sq, ex, 3))],
                   axis=1)
        cin = 2 * ex
    x = n.relu(n.conv(n.dropout(x), cin, classes, 1, p=0))
    x = n.node("Reshape", [n.node("GlobalAveragePool", [x]), n.ints([0, -1])])
    return n.model((batch, 3, size, size), n.softmax(x))


def densenet(size: int = 224, width: float = 1.0, classes: int = 1000, batch: int | str = 1,
             seed: int = 0, blocks: Sequence[int] = (6, 12, 24, 16),
             growth: int = 32) -> onnx.ModelProto:
    """DenseNet (121 by default), opset 14: BN-ReLU-Conv layers whose outputs are concatenated,
    transitions with AveragePool, Reshape (allowzero=0) with 0 and -1."""
    n = Net("densenet", 14, seed)
    k = _ch(growth, width)
    c = 2 * k
    x = n.max_pool(n.conv_bn_relu("input", 3, c, 7, 2), 3, 2, 1)
    for b, layers in enumerate(blocks):
        for _ in range(layers):
            y = n.conv(n.relu(n.bn(x, c)), c, 4 * k, 1, p=0, bias=False)
            y = n.conv(n.relu(n.bn(y, 4 * k)), 4 * k, k, 3, bias=False)
            x, c = n.node("Concat", [x, y], axis=1), c + k
        if b < len(blocks) - 1:
            x = n.conv(n.relu(n.bn(x, c)), c, c // 2, 1, p=0, bias=False)
            x, c = n.avg_pool(x, 2, 2), c // 2
    x = n.node("GlobalAveragePool", [n.relu(n.bn(x, c))])
    x = n.node("Reshape", [x, n.ints([0, -1])], allowzero=0)
    return n.model((batch, 3, size, size), n.softmax(n.dense(x, c, classes)))


def shufflenet(size: int = 224, width: float = 1.0, classes: int = 1000, batch: int | str = 1,
               seed: int = 0, groups: int = 3, repeats: Sequence[int] = (4, 8, 4)) -> onnx.ModelProto:
    """ShuffleNet v1, opset 13: grouped 1x1 convs, channel shuffle (Reshape+Transpose+Reshape),
    depthwise 3x3 (auto_pad SAME_UPPER where stride 1), AveragePool shortcut concatenated on
    stride-2 units, Clip(0, 6) activations with bound inputs."""
    n = Net("shufflenet", 13, seed)
    out_channels = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}[groups]
    c0 = _ch(24, width)
    x = n.max_pool(n.relu(n.conv("input", 3, c0, 3, 2, 1)), 3, 2, 1)
    side = _pool_out(_pool_out(size, 3, 2, 1), 3, 2, 1)
    cin = c0
    for stage, reps in enumerate(repeats):
        cout = _ch(out_channels * 2 ** stage, width) // groups * groups
        for i in range(reps):
            stride = 2 if i == 0 else 1
            branch = cout - cin if stride == 2 else cout
            mid = max(groups, branch // 4 // groups * groups)
            g1 = 1 if stage == 0 and i == 0 else groups
            y = n.conv_bn_relu(x, cin, mid, 1, groups=g1)
            y = _channel_shuffle(n, y, mid, g1, side)
            if stride == 2:
                y = n.bn(n.conv(y, mid, mid, 3, 2, groups=mid, bias=False), mid)
                side = _pool_out(side, 3, 2, 1)
            else:
                y = n.bn(n.conv(y, mid, mid, 3, 1, groups=mid, bias=False,
                                auto_pad="SAME_UPPER"), mid)
            y = n.bn(n.conv(y, mid, branch, 1, groups=groups, bias=False), branch)
            if stride == 2:
                short = n.avg_pool(x, 3, 2, 1)
                x = n.clip(n.node("Concat", [short, y], axis=1), 0.0, 6.0)
            else:
                x = n.clip(n.node("Add", [x, y]), 0.0, 6.0)
            cin = cout
    x = n.node("Flatten", [n.node("GlobalAveragePool", [x])])
    return n.model((batch, 3, size, size), n.softmax(n.dense(x, cin, classes)))


def _channel_shuffle(n: Net, x: str, c: int, groups: int, side: int) -> str:
    if groups == 1:
        return x
    y = n.node("Reshape", [x, n.ints([0, groups, c // groups, -1])])
    y = n.node("Transpose", [y], perm=[0, 2, 1, 3])
    return n.node("Reshape", [y, n.ints([0, c, side, -1])])


MODELS: dict[str, Callable[..., onnx.ModelProto]] = {
    "alexnet": alexnet, "vgg": vgg, "resnet": resnet, "inception": inception,
    "squeezenet": squeezenet, "densenet": densenet, "shufflenet": shufflenet,
}

# small, fast versions of every architecture (the tests' default)
SMALL: dict[str, Callable[[], onnx.ModelProto]] = {
    "alexnet": lambda: alexnet(size=64, width=0.125, classes=10),
    "vgg": lambda: vgg(size=32, width=0.125, classes=10, config="vgg11"),
    "resnet": lambda: resnet(size=32, width=0.25, classes=10),
    "inception": lambda: inception(size=64, width=0.125, classes=10),
    "squeezenet": lambda: squeezenet(size=48, width=0.25, classes=10),
    "densenet": lambda: densenet(size=32, width=0.25, classes=10, blocks=(2, 3, 4, 2)),
    "shufflenet": lambda: shufflenet(size=64, width=0.25, classes=10, repeats=(2, 3, 2)),
}
