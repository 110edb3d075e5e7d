"""Classic CNN architectures written in the DSL, with random (seeded) weights.

Used by the benchmarks and the tests. `width` scales every channel count (1.0 = the published
network) and `size` the input resolution, so tests can build small versions of the same topology.
Batch norm appears where the published network has it, with random statistics so that folding it
is exercised with real numbers.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import dsl as nn
from .dsl import GraphBuilder, Tensor
from .ir import Graph


class _Seeds:
    """Hands out a fresh seed per layer so a model is reproducible from one number."""

    def __init__(self, seed: int):
        self.next = seed * 1000

    def __call__(self) -> int:
        self.next += 1
        return self.next


def _ch(c: int, width: float) -> int:
    return max(4, round(c * width))


def _bn(c: int, seed: int) -> nn.BatchNorm2d:
    rng = np.random.default_rng(seed)
    return nn.BatchNorm2d(c, weight=rng.uniform(0.5, 1.5, c), bias=rng.uniform(-0.2, 0.2, c),
                          running_mean=rng.uniform(-0.2, 0.2, c), running_var=rng.uniform(0.5, 1.5, c))


def _conv_bn_relu(x: Tensor, cin: int, cout: int, k: int, s: int, seeds: _Seeds,
                  groups: int = 1, relu: bool = True) -> Tensor:
    y = nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, groups=groups, bias=False,
                  seed=seeds())(x)
    y = _bn(cout, seeds())(y)
    return nn.ReLU()(y) if relu else y


def lenet5(batch: int = 1, seed: int = 0) -> Graph:
    s = _Seeds(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, seed=s()), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, seed=s()), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dense(400, 120, seed=s()), nn.ReLU(), nn.Dense(120, 84, seed=s()),
        nn.ReLU(), nn.Dense(84, 10, seed=s()), nn.Softmax(),
    ).build((batch, 1, 28, 28), name=f"lenet5_b{batch}")


def vgg_cifar(batch: int = 1, width: float = 1.0, seed: int = 0) -> Graph:
    """A VGG-style CIFAR-10 net: 3 stages of two 3x3 conv+BN+ReLU and a max pool."""
    s = _Seeds(seed)
    b = GraphBuilder(f"vgg_cifar_b{batch}")
    x = b.input("input", (batch, 3, 32, 32))
    cin = 3
    for c in (64, 128, 256):
        c = _ch(c, width)
        x = _conv_bn_relu(x, cin, c, 3, 1, s)
        x = _conv_bn_relu(x, c, c, 3, 1, s)
        x = nn.MaxPool2d(2)(x)
        cin = c
    x = nn.Flatten()(x)
    x = nn.ReLU()(nn.Dense(cin * 16, 256, seed=s())(x))
    return b.build(nn.Softmax()(nn.Dense(256, 10, seed=s())(x)))


def alexnet(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0) -> Graph:
    s = _Seeds(seed)
    c = [_ch(v, width) for v in (64, 192, 384, 256, 256)]
    feats = nn.Sequential(
        nn.Conv2d(3, c[0], 11, stride=4, padding=2, seed=s()), nn.ReLU(), nn.LRN(5),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2, seed=s()), nn.ReLU(), nn.LRN(5), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1, seed=s()), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1, seed=s()), nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1, seed=s()), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    b = GraphBuilder(f"alexnet_b{batch}")
    x = feats(b.input("input", (batch, 3, size, size)))
    x = nn.Flatten()(x)
    hidden = _ch(4096, width)
    x = nn.ReLU()(nn.Dense(x.shape[1], hidden, seed=s())(nn.Dropout()(x)))
    x = nn.ReLU()(nn.Dense(hidden, hidden, seed=s())(nn.Dropout()(x)))
    return b.build(nn.Softmax()(nn.Dense(hidden, 1000, seed=s())(x)))


def vgg19(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0) -> Graph:
    s = _Seeds(seed)
    b = GraphBuilder(f"vgg19_b{batch}")
    x = b.input("input", (batch, 3, size, size))
    cin = 3
    for c, n in ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)):
        c = _ch(c, width)
        for _ in range(n):
            x = nn.ReLU()(nn.Conv2d(cin, c, 3, padding=1, seed=s())(x))
            cin = c
        x = nn.MaxPool2d(2)(x)
    x = nn.Flatten()(x)
    hidden = _ch(4096, width)
    x = nn.ReLU()(nn.Dense(x.shape[1], hidden, seed=s())(x))
    x = nn.ReLU()(nn.Dense(hidden, hidden, seed=s())(x))
    return b.build(nn.Softmax()(nn.Dense(hidden, 1000, seed=s())(x)))


def _basic_block(x: Tensor, cin: int, cout: int, stride: int, s: _Seeds) -> Tensor:
    y = _conv_bn_relu(x, cin, cout, 3, stride, s)
    y = _conv_bn_relu(y, cout, cout, 3, 1, s, relu=False)
    short = x if stride == 1 and cin == cout else _conv_bn_relu(x, cin, cout, 1, stride, s, relu=False)
    return nn.ReLU()(y + short)


def _bottleneck(x: Tensor, cin: int, mid: int, stride: int, s: _Seeds) -> Tensor:
    cout = mid * 4
    y = _conv_bn_relu(x, cin, mid, 1, 1, s)
    y = _conv_bn_relu(y, mid, mid, 3, stride, s)
    y = _conv_bn_relu(y, mid, cout, 1, 1, s, relu=False)
    short = x if stride == 1 and cin == cout else _conv_bn_relu(x, cin, cout, 1, stride, s, relu=False)
    return nn.ReLU()(y + short)


def _resnet(name: str, blocks: tuple[int, ...], bottleneck: bool, batch: int, width: float,
            size: int, seed: int) -> Graph:
    s = _Seeds(seed)
    b = GraphBuilder(f"{name}_b{batch}")
    x = b.input("input", (batch, 3, size, size))
    c0 = _ch(64, width)
    x = _conv_bn_relu(x, 3, c0, 7, 2, s)
    x = nn.MaxPool2d(3, 2, padding=1)(x)
    cin = c0
    for stage, n in enumerate(blocks):
        mid = _ch(64 * 2 ** stage, width)
        for i in range(n):
            stride = 2 if i == 0 and stage > 0 else 1
            if bottleneck:
                x, cin = _bottleneck(x, cin, mid, stride, s), mid * 4
            else:
                x, cin = _basic_block(x, cin, mid, stride, s), mid
    x = nn.Flatten()(nn.GlobalAvgPool2d()(x))
    return b.build(nn.Softmax()(nn.Dense(cin, 1000, seed=s())(x)))


def resnet18(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0) -> Graph:
    return _resnet("resnet18", (2, 2, 2, 2), False, batch, width, size, seed)


def resnet50(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0) -> Graph:
    return _resnet("resnet50", (3, 4, 6, 3), True, batch, width, size, seed)


def _inception(x: Tensor, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int,
               s: _Seeds) -> tuple[Tensor, int]:
    relu = nn.ReLU
    b1 = relu()(nn.Conv2d(cin, c1, 1, seed=s())(x))
    b2 = relu()(nn.Conv2d(c3r, c3, 3, padding=1, seed=s())(relu()(nn.Conv2d(cin, c3r, 1, seed=s())(x))))
    b3 = relu()(nn.Conv2d(c5r, c5, 5, padding=2, seed=s())(relu()(nn.Conv2d(cin, c5r, 1, seed=s())(x))))
    b4 = relu()(nn.Conv2d(cin, pp, 1, seed=s())(nn.MaxPool2d(3, 1, padding=1)(x)))
    return nn.concat([b1, b2, b3, b4], axis=1), c1 + c3 + c5 + pp


def inception_v1(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0) -> Graph:
    """GoogLeNet without the auxiliary heads."""
    s = _Seeds(seed)
    w = lambda c: _ch(c, width)
    b = GraphBuilder(f"inception_v1_b{batch}")
    x = b.input("input", (batch, 3, size, size))
    x = nn.ReLU()(nn.Conv2d(3, w(64), 7, stride=2, padding=3, seed=s())(x))
    x = nn.LRN(5)(nn.MaxPool2d(3, 2, ceil_mode=True)(x))
    x = nn.ReLU()(nn.Conv2d(w(64), w(64), 1, seed=s())(x))
    x = nn.ReLU()(nn.Conv2d(w(64), w(192), 3, padding=1, seed=s())(x))
    x = nn.MaxPool2d(3, 2, ceil_mode=True)(nn.LRN(5)(x))
    cin = w(192)
    config = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "pool",
              (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
              (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128), "pool",
              (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]
    for item in config:
        if item == "pool":
            x = nn.MaxPool2d(3, 2, ceil_mode=True)(x)
        else:
            x, cin = _inception(x, cin, *(w(c) for c in item), s)
    x = nn.Flatten()(nn.GlobalAvgPool2d()(x))
    return b.build(nn.Softmax()(nn.Dense(cin, 1000, seed=s())(nn.Dropout(0.4)(x))))


def squeezenet(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0) -> Graph:
    """SqueezeNet 1.1: fire modules (squeeze 1x1, expand 1x1 and 3x3 concatenated)."""
    s = _Seeds(seed)
    w = lambda c: _ch(c, width)
    b = GraphBuilder(f"squeezenet_b{batch}")
    x = b.input("input", (batch, 3, size, size))
    x = nn.MaxPool2d(3, 2, ceil_mode=True)(nn.ReLU()(nn.Conv2d(3, w(64), 3, stride=2, seed=s())(x)))
    cin = w(64)

    def fire(x, cin, sq, ex):
        y = nn.ReLU()(nn.Conv2d(cin, sq, 1, seed=s())(x))
        e1 = nn.ReLU()(nn.Conv2d(sq, ex, 1, seed=s())(y))
        e3 = nn.ReLU()(nn.Conv2d(sq, ex, 3, padding=1, seed=s())(y))
        return nn.concat([e1, e3], axis=1), 2 * ex

    for item in [(16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192),
                 (64, 256), (64, 256)]:
        if item == "pool":
            x = nn.MaxPool2d(3, 2, ceil_mode=True)(x)
        else:
            x, cin = fire(x, cin, w(item[0]), w(item[1]))
    x = nn.ReLU()(nn.Conv2d(cin, 1000, 1, seed=s())(nn.Dropout()(x)))
    x = nn.Flatten()(nn.GlobalAvgPool2d()(x))
    return b.build(nn.Softmax()(x))


def densenet121(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0,
                blocks: tuple[int, ...] = (6, 12, 24, 16)) -> Graph:
    s = _Seeds(seed)
    growth = _ch(32, width)
    b = GraphBuilder(f"densenet121_b{batch}")
    x = b.input("input", (batch, 3, size, size))
    cin = 2 * growth
    x = nn.MaxPool2d(3, 2, padding=1)(_conv_bn_relu(x, 3, cin, 7, 2, s))

    def bn_relu_conv(x, cin, cout, k):
        y = nn.ReLU()(_bn(cin, s())(x))
        return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False, seed=s())(y)

    for i, n in enumerate(blocks):
        feats = [x]
        for _ in range(n):
            y = bn_relu_conv(x, cin, 4 * growth, 1)
            y = bn_relu_conv(y, 4 * growth, growth, 3)
            feats.append(y)
            x = nn.concat(feats, axis=1)
            cin += growth
        if i < len(blocks) - 1:
            x = nn.AvgPool2d(2)(bn_relu_conv(x, cin, cin // 2, 1))
            cin //= 2
    x = nn.ReLU()(_bn(cin, s())(x))
    x = nn.Flatten()(nn.GlobalAvgPool2d()(x))
    return b.build(nn.Softmax()(nn.Dense(cin, 1000, seed=s())(x)))


def _channel_shuffle(x: Tensor, groups: int) -> Tensor:
    n, c, h, w = x.shape
    y = nn.reshape(x, (n, groups, c // groups, h, w))
    return nn.reshape(nn.transpose(y, (0, 2, 1, 3, 4)), (n, c, h, w))


def shufflenet(batch: int = 1, width: float = 1.0, size: int = 224, seed: int = 0,
               groups: int = 3) -> Graph:
    """ShuffleNet v1 (g=3): grouped 1x1 convs, channel shuffle, depthwise 3x3, concat/add."""
    s = _Seeds(seed)
    b = GraphBuilder(f"shufflenet_b{batch}")
    x = b.input("input", (batch, 3, size, size))
    c0 = 24
    x = nn.MaxPool2d(3, 2, padding=1)(_conv_bn_relu(x, 3, c0, 3, 2, s))
    cin = c0
    stage_out = [int(240 * width) // (groups * 4) * groups * 4 * m for m in (1, 2, 4)]
    for stage, (cout, repeat) in enumerate(zip(stage_out, (4, 8, 4))):
        for i in range(repeat):
            stride = 2 if i == 0 else 1
            branch_out = cout - cin if stride == 2 else cout
            mid = cout // 4
            g1 = 1 if stage == 0 and i == 0 else groups
            y = _conv_bn_relu(x, cin, mid, 1, 1, s, groups=g1)
            y = _channel_shuffle(y, g1) if g1 > 1 else y
            y = _conv_bn_relu(y, mid, mid, 3, stride, s, groups=mid, relu=False)
            y = _conv_bn_relu(y, mid, branch_out, 1, 1, s, groups=groups, relu=False)
            if stride == 2:
                x = nn.ReLU()(nn.concat([nn.AvgPool2d(3, 2, padding=1)(x), y], axis=1))
            else:
                x = nn.ReLU()(x + y)
            cin = cout
    x = nn.Flatten()(nn.GlobalAvgPool2d()(x))
    return b.build(nn.Softmax()(nn.Dense(cin, 1000, seed=s())(x)))


# name -> builder(batch=..., width=..., size=...) of the ImageNet architectures
IMAGENET: dict[str, Callable[..., Graph]] = {
    "alexnet": alexnet, "vgg19": vgg19, "resnet50": resnet50, "inception_v1": inception_v1,
    "squeezenet": squeezenet, "densenet121": densenet121, "shufflenet": shufflenet,
}
SMALL: dict[str, Callable[..., Graph]] = {"lenet5": lenet5, "vgg_cifar": vgg_cifar}
