"""The CNNs PyTorch users export, defined with torch.nn in torchvision's structure.

torchvision's wheel is built against the CUDA torch and fails to import beside the CPU build
(its C ops do not register), so the architectures are written here with torch.nn alone, block for
block as torchvision defines them (layer order, activations, squeeze-excitation, channel split
and shuffle, stochastic depth as identity in eval, ConvNeXt's permuted LayerNorm), with a width
multiplier and the input resolution as knobs: the default suite exports narrow, small versions,
the slow suite the published widths at 224x224.

    from torch_zoo import ARCHITECTURES
    arch = ARCHITECTURES["resnet50"]
    model, example = arch.build(width=0.25, size=64)   # eval mode, seeded weights

Each model takes float32 NCHW images, except the text CNN, which takes int64 token ids.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


def _div(v: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of `divisor`, never down by > 10%."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _w(channels: int, width: float, divisor: int = 8) -> int:
    return _div(channels * width, divisor) if width != 1 else channels


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1,
                 act: Callable[[], nn.Module] | None = nn.ReLU, dilation: int = 1):
        layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2 * dilation, dilation=dilation,
                            groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, cin: int, squeeze: int, act: Callable[[], nn.Module] = nn.ReLU,
                 scale_act: Callable[[], nn.Module] = nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(cin, squeeze, 1), nn.Conv2d(squeeze, cin, 1)
        self.act, self.scale_act = act(), scale_act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale_act(self.fc2(self.act(self.fc1(self.avgpool(x)))))
        return x * s


# ----- AlexNet, VGG ---------------------------------------------------------------------------
class AlexNet(nn.Module):
    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        c = [_w(n, width) for n in (64, 192, 384, 256, 256)]
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        hidden = _w(4096, width)
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(c[4] * 36, hidden), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGG(nn.Module):
    CFG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
             "M")

    def __init__(self, width: float = 1.0, classes: int = 1000, batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self.CFG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            cout = _w(v, width)
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = _w(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(cin * 49, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ----- ResNet, ResNeXt, Wide ResNet -------------------------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, down: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, down: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1):
        super().__init__()
        mid = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, dilation, dilation=dilation, groups=groups,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    def __init__(self, block: type, layers: tuple[int, ...], width: float = 1.0,
                 classes: int = 1000, groups: int = 1, width_per_group: int = 64,
                 dilate: tuple[bool, bool, bool] = (False, False, False), head: bool = True):
        super().__init__()
        self.block, self.groups, self.base_width = block, groups, width_per_group
        self.inplanes, self.dilation = _w(64, width), 1
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes = [_w(p, width) for p in (64, 128, 256, 512)]
        self.layer1 = self._layer(planes[0], layers[0])
        self.layer2 = self._layer(planes[1], layers[1], 2, dilate[0])
        self.layer3 = self._layer(planes[2], layers[2], 2, dilate[1])
        self.layer4 = self._layer(planes[3], layers[3], 2, dilate[2])
        self.head = head
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, classes)

    def _layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False
               ) -> nn.Sequential:
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        down = None
        out = planes * self.block.expansion
        if stride != 1 or self.inplanes != out:
            down = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride, bias=False),
                                 nn.BatchNorm2d(out))
        layers = [self.block(self.inplanes, planes, stride, down, self.groups, self.base_width,
                             previous)]
        self.inplanes = out
        layers += [self.block(out, planes, groups=self.groups, base_width=self.base_width,
                              dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


# ----- DenseNet -----------------------------------------------------------------------------
class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, cin: int, growth: int, bn_size: int):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth, bn_size)
                          for i in range(layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    def __init__(self, width: float = 1.0, classes: int = 1000,
                 blocks: tuple[int, ...] = (6, 12, 24, 16), growth: int = 32, init: int = 64,
                 bn_size: int = 4):
        super().__init__()
        growth, init = _w(growth, width), _w(init, width)
        layers: list[nn.Module] = [nn.Conv2d(3, init, 7, 2, 3, bias=False), nn.BatchNorm2d(init),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        c = init
        for i, n in enumerate(blocks):
            layers.append(DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i != len(blocks) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                           nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
                c //= 2
        layers.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1))
        return self.classifier(torch.flatten(out, 1))


# ----- GoogLeNet, Inception-v3 ----------------------------------------------------------------
def _bconv(cin: int, cout: int, eps: float = 0.001, **kw) -> nn.Sequential:
    """torchvision's BasicConv2d: conv without bias, batch norm (eps 1e-3), relu."""
    return nn.Sequential(nn.Conv2d(cin, cout, bias=False, **kw), nn.BatchNorm2d(cout, eps=eps),
                         nn.ReLU(inplace=True))


class GoogLeNetInception(nn.Module):
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int):
        super().__init__()
        self.branch1 = _bconv(cin, c1, kernel_size=1)
        self.branch2 = nn.Sequential(_bconv(cin, c3r, kernel_size=1),
                                     _bconv(c3r, c3, kernel_size=3, padding=1))
        # torchvision's "5x5" branch is a 3x3 conv (a known quirk kept for its weights)
        self.branch3 = nn.Sequential(_bconv(cin, c5r, kernel_size=1),
                                     _bconv(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     _bconv(cin, pp, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    SPEC = ((192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), "M",
            (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
            (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
            (528, 256, 160, 320, 32, 128, 128), "M2",
            (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128))

    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        w = partial(_w, width=width)
        self.stem = nn.Sequential(
            _bconv(3, w(64), kernel_size=7, stride=2, padding=3), nn.MaxPool2d(3, 2, ceil_mode=True),
            _bconv(w(64), w(64), kernel_size=1), _bconv(w(64), w(192), kernel_size=3, padding=1),
            nn.MaxPool2d(3, 2, ceil_mode=True))
        layers: list[nn.Module] = []
        cin = w(192)
        for spec in self.SPEC:
            if spec == "M":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            elif spec == "M2":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                c = [w(v) for v in spec[1:]]
                layers.append(GoogLeNetInception(cin, *c))
                cin = c[0] + c[2] + c[4] + c[5]
        self.inceptions = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # transform_input=True for pretrained weights: per-channel affine of the input
        ch = [x[:, i:i + 1] * s + b for i, (s, b) in enumerate(
            ((0.229 / 0.5, (0.485 - 0.5) / 0.5), (0.224 / 0.5, (0.456 - 0.5) / 0.5),
             (0.225 / 0.5, (0.406 - 0.5) / 0.5)))]
        x = self.inceptions(self.stem(torch.cat(ch, 1)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool: int, w: Callable[[int], int]):
        super().__init__()
        self.b1 = _bconv(cin, w(64), kernel_size=1)
        self.b5 = nn.Sequential(_bconv(cin, w(48), kernel_size=1),
                                _bconv(w(48), w(64), kernel_size=5, padding=2))
        self.b3 = nn.Sequential(_bconv(cin, w(64), kernel_size=1),
                                _bconv(w(64), w(96), kernel_size=3, padding=1),
                                _bconv(w(96), w(96), kernel_size=3, padding=1))
        self.bp = _bconv(cin, pool, kernel_size=1)
        self.out = w(64) + w(64) + w(96) + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b5(x), self.b3(x),
                          self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int, w: Callable[[int], int]):
        super().__init__()
        self.b3 = _bconv(cin, w(384), kernel_size=3, stride=2)
        self.bd = nn.Sequential(_bconv(cin, w(64), kernel_size=1),
                                _bconv(w(64), w(96), kernel_size=3, padding=1),
                                _bconv(w(96), w(96), kernel_size=3, stride=2))
        self.out = w(384) + w(96) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.bd(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, w: Callable[[int], int]):
        super().__init__()
        self.b1 = _bconv(cin, w(192), kernel_size=1)
        self.b7 = nn.Sequential(_bconv(cin, c7, kernel_size=1),
                                _bconv(c7, c7, kernel_size=(1, 7), padding=(0, 3)),
                                _bconv(c7, w(192), kernel_size=(7, 1), padding=(3, 0)))
        self.bd = nn.Sequential(_bconv(cin, c7, kernel_size=1),
                                _bconv(c7, c7, kernel_size=(7, 1), padding=(3, 0)),
                                _bconv(c7, c7, kernel_size=(1, 7), padding=(0, 3)),
                                _bconv(c7, c7, kernel_size=(7, 1), padding=(3, 0)),
                                _bconv(c7, w(192), kernel_size=(1, 7), padding=(0, 3)))
        self.bp = _bconv(cin, w(192), kernel_size=1)
        self.out = 4 * w(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b7(x), self.bd(x),
                          self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int, w: Callable[[int], int]):
        super().__init__()
        self.b3 = nn.Sequential(_bconv(cin, w(192), kernel_size=1),
                                _bconv(w(192), w(320), kernel_size=3, stride=2))
        self.b7 = nn.Sequential(_bconv(cin, w(192), kernel_size=1),
                                _bconv(w(192), w(192), kernel_size=(1, 7), padding=(0, 3)),
                                _bconv(w(192), w(192), kernel_size=(7, 1), padding=(3, 0)),
                                _bconv(w(192), w(192), kernel_size=3, stride=2))
        self.out = w(320) + w(192) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.b7(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, w: Callable[[int], int]):
        super().__init__()
        self.b1 = _bconv(cin, w(320), kernel_size=1)
        self.b3_1 = _bconv(cin, w(384), kernel_size=1)
        self.b3_2a = _bconv(w(384), w(384), kernel_size=(1, 3), padding=(0, 1))
        self.b3_2b = _bconv(w(384), w(384), kernel_size=(3, 1), padding=(1, 0))
        self.bd_1 = _bconv(cin, w(448), kernel_size=1)
        self.bd_2 = _bconv(w(448), w(384), kernel_size=3, padding=1)
        self.bd_3a = _bconv(w(384), w(384), kernel_size=(1, 3), padding=(0, 1))
        self.bd_3b = _bconv(w(384), w(384), kernel_size=(3, 1), padding=(1, 0))
        self.bp = _bconv(cin, w(192), kernel_size=1)
        self.out = w(320) + 4 * w(384) + w(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.b3_1(x)
        bd = self.bd_2(self.bd_1(x))
        return torch.cat([self.b1(x), torch.cat([self.b3_2a(b3), self.b3_2b(b3)], 1),
                          torch.cat([self.bd_3a(bd), self.bd_3b(bd)], 1),
                          self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class InceptionV3(nn.Module):
    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        w = partial(_w, width=width)
        self.stem = nn.Sequential(
            _bconv(3, w(32), kernel_size=3, stride=2), _bconv(w(32), w(32), kernel_size=3),
            _bconv(w(32), w(64), kernel_size=3, padding=1), nn.MaxPool2d(3, 2),
            _bconv(w(64), w(80), kernel_size=1), _bconv(w(80), w(192), kernel_size=3),
            nn.MaxPool2d(3, 2))
        blocks: list[nn.Module] = []
        cin = w(192)
        for make in (lambda c: InceptionA(c, w(32), w), lambda c: InceptionA(c, w(64), w),
                     lambda c: InceptionA(c, w(64), w), lambda c: InceptionB(c, w),
                     lambda c: InceptionC(c, w(128), w), lambda c: InceptionC(c, w(160), w),
                     lambda c: InceptionC(c, w(160), w), lambda c: InceptionC(c, w(192), w),
                     lambda c: InceptionD(c, w), lambda c: InceptionE(c, w),
                     lambda c: InceptionE(c, w)):
            block = make(cin)
            blocks.append(block)
            cin = block.out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.blocks(self.stem(x)), (1, 1))
        return self.fc(F.dropout(torch.flatten(x, 1), training=self.training))


# ----- SqueezeNet, ShuffleNet-v2 ----------------------------------------------------------------
class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1."""

    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        w = partial(_w, width=width)
        fire = [(16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192),
                (64, 256), (64, 256)]
        layers: list[nn.Module] = [nn.Conv2d(3, w(64), 3, 2), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(3, 2, ceil_mode=True)]
        cin = w(64)
        for f in fire:
            if f == "M":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            else:
                layers.append(Fire(cin, w(f[0]), w(f[1]), w(f[1])))
                cin = 2 * w(f[1])
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(cin, classes, 1),
                                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        b2_in = cin if stride > 1 else half
        self.branch2 = nn.Sequential(
            nn.Conv2d(b2_in, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        stages = [_w(c, width) for c in (116, 232, 464)]
        last = _w(1024, width)
        c0 = _w(24, width)
        self.conv1 = nn.Sequential(nn.Conv2d(3, c0, 3, 2, 1, bias=False), nn.BatchNorm2d(c0),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers: list[nn.Module] = []
        cin = c0
        for repeats, cout in zip((4, 8, 4), stages):
            layers.append(ShuffleUnit(cin, cout, 2))
            layers += [ShuffleUnit(cout, cout, 1) for _ in range(repeats - 1)]
            cin = cout
        self.stages = nn.Sequential(*layers)
        self.conv5 = nn.Sequential(nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last),
                                   nn.ReLU(inplace=True))
        self.fc = nn.Linear(last, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.stages(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))  # torchvision's global pool


# ----- MobileNet-v2/v3, MnasNet, EfficientNet ----------------------------------------------------
class InvertedResidual(nn.Module):
    """MobileNet-v2's block (ReLU6) and MobileNet-v3's (SE with hardsigmoid, hardswish)."""

    def __init__(self, cin: int, expanded: int, cout: int, k: int, stride: int,
                 act: Callable[[], nn.Module], se: bool = False, dilation: int = 1):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(ConvBNAct(cin, expanded, 1, act=act))
        layers.append(ConvBNAct(expanded, expanded, k, 1 if dilation > 1 else stride,
                                groups=expanded, act=act, dilation=dilation))
        if se:
            layers.append(SqueezeExcitation(expanded, _div(expanded // 4), nn.ReLU,
                                            nn.Hardsigmoid))
        layers.append(ConvBNAct(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV2(nn.Module):
    SPEC = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        cin, last = _div(32 * width), _div(1280 * max(1.0, width))
        layers: list[nn.Module] = [ConvBNAct(3, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in self.SPEC:
            cout = _div(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, round(cin * t), cout, 3,
                                               s if i == 0 else 1, nn.ReLU6))
                cin = cout
        layers.append(ConvBNAct(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class MobileNetV3(nn.Module):
    # (kernel, expanded, out, se, activation, stride, dilation)
    LARGE = ((3, 16, 16, False, "RE", 1, 1), (3, 64, 24, False, "RE", 2, 1),
             (3, 72, 24, False, "RE", 1, 1), (5, 72, 40, True, "RE", 2, 1),
             (5, 120, 40, True, "RE", 1, 1), (5, 120, 40, True, "RE", 1, 1),
             (3, 240, 80, False, "HS", 2, 1), (3, 200, 80, False, "HS", 1, 1),
             (3, 184, 80, False, "HS", 1, 1), (3, 184, 80, False, "HS", 1, 1),
             (3, 480, 112, True, "HS", 1, 1), (3, 672, 112, True, "HS", 1, 1),
             (5, 672, 160, True, "HS", 2, 1), (5, 960, 160, True, "HS", 1, 1),
             (5, 960, 160, True, "HS", 1, 1))
    SMALL = ((3, 16, 16, True, "RE", 2, 1), (3, 72, 24, False, "RE", 2, 1),
             (3, 88, 24, False, "RE", 1, 1), (5, 96, 40, True, "HS", 2, 1),
             (5, 240, 40, True, "HS", 1, 1), (5, 240, 40, True, "HS", 1, 1),
             (5, 120, 48, True, "HS", 1, 1), (5, 144, 48, True, "HS", 1, 1),
             (5, 288, 96, True, "HS", 2, 1), (5, 576, 96, True, "HS", 1, 1),
             (5, 576, 96, True, "HS", 1, 1))

    def __init__(self, width: float = 1.0, classes: int = 1000, small: bool = False,
                 dilated: bool = False):
        super().__init__()
        spec = list(self.SMALL if small else self.LARGE)
        if dilated:  # the segmentation backbone: the last stage dilated instead of strided
            spec[-3:] = [(k, e, o, se, a, 1, 2) for k, e, o, se, a, _s, _d in spec[-3:]]
        cin = _div(16 * width)
        layers: list[nn.Module] = [ConvBNAct(3, cin, 3, 2, act=nn.Hardswish)]
        self.taps: list[int] = []  # the last layer before each stride-2 block (LR-ASPP's low tap)
        for k, e, o, se, a, s, d in spec:
            if s == 2:
                self.taps.append(len(layers) - 1)
            cout = _div(o * width)
            layers.append(InvertedResidual(cin, _div(e * width), cout, k, s,
                                           nn.ReLU if a == "RE" else nn.Hardswish, se, d))
            cin = cout
        self.out_channels = 6 * cin
        layers.append(ConvBNAct(cin, self.out_channels, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        last = _div((1024 if small else 1280) * width)
        self.classifier = nn.Sequential(nn.Linear(self.out_channels, last), nn.Hardswish(),
                                        nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class MNASNet(nn.Module):
    """MnasNet 1.0: separable stem, inverted residuals with ReLU, batch norm momentum 0.0003."""

    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        d = [_div(c * width) for c in (32, 16, 24, 40, 80, 96, 192, 320)]
        layers: list[nn.Module] = [
            ConvBNAct(3, d[0], 3, 2), ConvBNAct(d[0], d[0], 3, groups=d[0]),
            ConvBNAct(d[0], d[1], 1, act=None)]
        cin = d[1]
        for cout, k, s, t, n in zip(d[2:], (3, 5, 5, 3, 5, 3), (2, 2, 2, 1, 2, 1),
                                    (3, 3, 6, 6, 6, 6), (3, 3, 3, 2, 4, 1)):
            for i in range(n):
                layers.append(InvertedResidual(cin, cin * t, cout, k, s if i == 0 else 1,
                                               nn.ReLU))
                cin = cout
        layers.append(ConvBNAct(cin, 1280, 1))
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        mid = _div(cin * expand)
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(ConvBNAct(cin, mid, 1, act=nn.SiLU))
        layers += [ConvBNAct(mid, mid, k, stride, groups=mid, act=nn.SiLU),
                   SqueezeExcitation(mid, max(1, cin // 4), nn.SiLU, nn.Sigmoid),
                   ConvBNAct(mid, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.use_res else y  # stochastic depth is the identity in eval


class EfficientNet(nn.Module):
    """EfficientNet-B0."""

    SPEC = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
            (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
            (6, 3, 1, 192, 320, 1))

    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        stem = _div(32 * width)
        layers: list[nn.Module] = [ConvBNAct(3, stem, 3, 2, act=nn.SiLU)]
        cin = stem
        for t, k, s, _ci, co, n in self.SPEC:
            cout = _div(co * width)
            for i in range(n):
                layers.append(MBConv(cin, cout, k, s if i == 0 else 1, t))
                cin = cout
        last = 4 * cin
        layers.append(ConvBNAct(cin, last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ----- RegNet, ConvNeXt -------------------------------------------------------------------------
class RegNetBlock(nn.Module):
    """RegNet-Y's ResBottleneckBlock: 1x1, grouped 3x3, SE (reduction 1/4 of the input), 1x1."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int):
        super().__init__()
        groups = cout // group_width
        self.f = nn.Sequential(
            ConvBNAct(cin, cout, 1), ConvBNAct(cout, cout, 3, stride, groups=groups),
            SqueezeExcitation(cout, round(0.25 * cin)), ConvBNAct(cout, cout, 1, act=None))
        self.proj = (ConvBNAct(cin, cout, 1, stride, act=None)
                     if stride != 1 or cin != cout else None)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.proj is None else self.proj(x)
        return self.activation(identity + self.f(x))


class RegNet(nn.Module):
    """RegNet-Y 400MF: depths (1, 3, 6, 6), widths (48, 104, 208, 440), group width 8."""

    def __init__(self, width: float = 1.0, classes: int = 1000):
        super().__init__()
        gw = 8
        widths = [max(gw, round(c * width / gw) * gw) for c in (48, 104, 208, 440)]
        stem = _w(32, width)
        layers: list[nn.Module] = [ConvBNAct(3, stem, 3, 2)]
        cin = stem
        for depth, cout in zip((1, 3, 6, 6), widths):
            for i in range(depth):
                layers.append(RegNetBlock(cin, cout, 2 if i == 0 else 1, gw))
                cin = cout
        self.trunk = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.trunk(x)), 1))


class LayerNorm2d(nn.LayerNorm):
    """torchvision's channel LayerNorm of NCHW: permute to NHWC, normalise, permute back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1, self.act, self.pw2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        # torchvision starts the layer scale at 1e-6; 0.1 keeps the block's branch visible in
        # a randomly initialised model's output
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pw2(self.act(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y  # stochastic depth is the identity in eval


class ConvNeXt(nn.Module):
    """ConvNeXt-Tiny: depths (3, 3, 9, 3), dims (96, 192, 384, 768)."""

    def __init__(self, width: float = 1.0, classes: int = 1000,
                 depths: tuple[int, ...] = (3, 3, 9, 3)):
        super().__init__()
        dims = [_w(d, width) for d in (96, 192, 384, 768)]
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4),
                                                 LayerNorm2d(dims[0], eps=1e-6))]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            layers += [CNBlock(dim) for _ in range(depth)]
            if i + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6),
                                            nn.Conv2d(dim, dims[i + 1], 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1),
                                        nn.Linear(dims[-1], classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


# ----- segmentation: FCN, LR-ASPP, U-Net ---------------------------------------------------------
class FCN(nn.Module):
    """FCN-ResNet50: a dilated ResNet-50 trunk (output stride 8), FCNHead, bilinear upsampling."""

    def __init__(self, width: float = 1.0, classes: int = 21):
        super().__init__()
        self.backbone = ResNet(Bottleneck, (3, 4, 6, 3), width, dilate=(False, True, True))
        cin = _w(512, width) * 4
        mid = cin // 4
        self.head = nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(mid), nn.ReLU(), nn.Dropout(0.1),
                                  nn.Conv2d(mid, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.backbone.features(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class LRASPP(nn.Module):
    """LR-ASPP on a dilated MobileNet-v3-Large."""

    def __init__(self, width: float = 1.0, classes: int = 21, inter: int = 128):
        super().__init__()
        self.backbone = MobileNetV3(width, dilated=True)
        feats = self.backbone.features
        self.low_index = self.backbone.taps[-1] + 1  # features[:low_index] end at stride 8
        low = feats[self.low_index - 1]
        low_c = low.block[-1][0].out_channels if isinstance(low, InvertedResidual) else 16
        high_c = self.backbone.out_channels
        inter = _w(inter, width)
        self.cbr = nn.Sequential(nn.Conv2d(high_c, inter, 1, bias=False), nn.BatchNorm2d(inter),
                                 nn.ReLU(inplace=True))
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_c, inter, 1, bias=False),
                                   nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_c, classes, 1)
        self.high_classifier = nn.Conv2d(inter, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.features
        low = feats[:self.low_index](x)
        high = feats[self.low_index:](low)
        y = self.cbr(high) * self.scale(high)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.low_classifier(low) + self.high_classifier(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class UNet(nn.Module):
    """The original U-Net's shape (padded convs): double 3x3 convs, max-pool down, 2x2 stride-2
    transposed convs up, skip concatenation."""

    def __init__(self, width: float = 1.0, classes: int = 2, depth: int = 4):
        super().__init__()
        chans = [_w(64 * 2 ** i, width) for i in range(depth + 1)]

        def double(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(ConvBNAct(cin, cout), ConvBNAct(cout, cout))
        self.down = nn.ModuleList([double(3, chans[0])] +
                                  [double(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, 2)
                                 for i in reversed(range(depth))])
        self.merge = nn.ModuleList([double(2 * chans[i], chans[i])
                                    for i in reversed(range(depth))])
        self.out = nn.Conv2d(chans[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], 1))
        return self.out(x)


# ----- text ---------------------------------------------------------------------------------
class TextCNN(nn.Module):
    """Kim (2014): embedding, Conv1d over time with widths 3/4/5, ReLU, max over time, dense."""

    def __init__(self, width: float = 1.0, classes: int = 4, vocab: int = 5000, dim: int = 128):
        super().__init__()
        filters = _w(100, width, 4)
        self.embedding = nn.Embedding(vocab, _w(dim, width))
        self.convs = nn.ModuleList([nn.Conv1d(_w(dim, width), filters, k) for k in (3, 4, 5)])
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(3 * filters, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens).transpose(1, 2)
        pooled = [F.relu(conv(x)).max(dim=2).values for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, 1)))


# ----- the table ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Architecture:
    name: str
    make: Callable[..., nn.Module]
    small_width: float         # the default suite's width multiplier
    small_size: int            # ... and input resolution (sequence length for text); AlexNet
                               # and VGG need 224, where their adaptive pools are the identity
    full_size: int = 224
    text: bool = False
    vocab: int = 5000

    def build(self, width: float | None = None, size: int | None = None, batch: int = 1,
              seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
        """The model in eval mode with seeded weights (batch norm statistics randomised so the
        folded affine is not the identity) and a seeded example input."""
        torch.manual_seed(seed)
        width = self.small_width if width is None else width
        model = self.make(width=width).eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
        size = self.small_size if size is None else size
        if self.text:
            example = torch.randint(0, self.vocab, (batch, size), dtype=torch.int64)
        else:
            example = torch.randn(batch, 3, size, size)
        return model, example


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("alexnet", AlexNet, 0.125, 224),
    Architecture("vgg16", VGG, 0.0625, 224),
    Architecture("resnet18", partial(ResNet, BasicBlock, (2, 2, 2, 2)), 0.25, 64),
    Architecture("resnet50", partial(ResNet, Bottleneck, (3, 4, 6, 3)), 0.25, 64),
    Architecture("resnext50_32x4d", partial(ResNet, Bottleneck, (3, 4, 6, 3), groups=32,
                                            width_per_group=4), 0.25, 64),
    Architecture("wide_resnet50_2", partial(ResNet, Bottleneck, (3, 4, 6, 3),
                                            width_per_group=128), 0.125, 64),
    Architecture("densenet121", DenseNet, 0.25, 64),
    Architecture("googlenet", GoogLeNet, 0.25, 64),
    Architecture("inception_v3", InceptionV3, 0.25, 96, full_size=299),
    Architecture("squeezenet1_1", SqueezeNet, 0.25, 64),
    Architecture("shufflenet_v2_x1_0", ShuffleNetV2, 0.25, 64),
    Architecture("mobilenet_v2", MobileNetV2, 0.25, 64),
    Architecture("mobilenet_v3_large", MobileNetV3, 0.25, 64),
    Architecture("mobilenet_v3_small", partial(MobileNetV3, small=True), 0.25, 64),
    Architecture("mnasnet1_0", MNASNet, 0.25, 64),
    Architecture("efficientnet_b0", EfficientNet, 0.25, 64),
    Architecture("regnet_y_400mf", RegNet, 0.25, 64),
    Architecture("convnext_tiny", partial(ConvNeXt, depths=(3, 3, 9, 3)), 0.25, 64),
    Architecture("fcn_resnet50", FCN, 0.125, 64, full_size=224),
    Architecture("lraspp_mobilenet_v3_large", LRASPP, 0.25, 64, full_size=224),
    Architecture("unet", UNet, 0.125, 64, full_size=256),
    Architecture("text_cnn", TextCNN, 0.5, 64, full_size=400, text=True),
)}
