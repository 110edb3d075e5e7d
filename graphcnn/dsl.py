"""The model DSL: PyTorch-like layers, `Sequential`, and a functional builder for DAGs.

    model = gc.Sequential(gc.Conv2d(1, 6, 5, padding=2), gc.ReLU(), gc.MaxPool2d(2), ...)
    graph = model.build((1, 1, 28, 28))

    b = gc.GraphBuilder("block")
    x = b.input("input", (1, 64, 56, 56))
    y = gc.ReLU()(gc.Conv2d(64, 64, 3, padding=1)(x) + x)
    graph = b.build(y)

Weights follow PyTorch's shapes and default initialisation (kaiming-uniform with a=sqrt(5), so
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias). They are drawn when the layer is made,
from `seed=` or else from the module generator that `gc.manual_seed` resets.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import GraphcnnError, ShapeError
from .ir import Graph, Value

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reset the generator layers draw default weights from (like torch.manual_seed)."""
    global _rng
    _rng = np.random.default_rng(seed)


def _generator(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed) if seed is not None else _rng


def _tuple(v: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    t = (int(v),) * n if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)
    if len(t) != n:
        raise ShapeError(f"{what}={v!r} must be an int or {n} ints")
    return t


def _weight(value: Any, shape: tuple[int, ...], layer: Layer, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.shape != shape:
        raise ShapeError(f"{layer}: {what} has shape {array.shape}, expected {shape}")
    return array


class Tensor:
    """A symbolic tensor in a GraphBuilder: what layers take and return in functional code."""

    def __init__(self, builder: GraphBuilder, value: Value):
        self.builder, self.value = builder, value

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.type.shape

    def __add__(self, other: Tensor) -> Tensor:
        return add(self, other)

    def __mul__(self, other: Tensor) -> Tensor:
        return mul(self, other)

    def __repr__(self) -> str:
        return f"Tensor(%{self.value.name}: {self.value.type})"


class GraphBuilder:
    """Builds a Graph from layer calls on symbolic Tensors (several inputs and outputs allowed)."""

    def __init__(self, name: str = "model"):
        self.graph = Graph(name)

    def input(self, name: str, shape: Sequence[int], dtype: str = "float32") -> Tensor:
        if any(int(d) < 1 for d in shape):
            raise ShapeError(f"input {name!r}: every dim must be >= 1, got {tuple(shape)}")
        return Tensor(self, self.graph.add_input(name, shape, dtype))

    def op(self, op: str, inputs: Sequence[Tensor], name: str | None = None,
           params: dict[str, np.ndarray] | None = None, **attrs: Any) -> Tensor:
        """Add one node; `params` (e.g. weight, bias) become constants named `<node>.<key>`."""
        for x in inputs:
            if not isinstance(x, Tensor) or x.builder is not self:
                raise GraphcnnError(f"{op}: input {x!r} is not a tensor of this builder")
        node_name = self.graph.unique_name(name or op)
        consts = [self.graph.add_constant(a, f"{node_name}.{k}") for k, a in (params or {}).items()]
        self.graph._names.discard(node_name)  # add_node reserves it again
        values = [x.value for x in inputs] + consts
        return Tensor(self, self.graph.apply(op, values, attrs, name=node_name))

    def build(self, *outputs: Tensor) -> Graph:
        from .verify import verify

        self.graph.set_outputs(t.value for t in outputs)
        verify(self.graph)
        return self.graph


def _builder_of(tensors: Sequence[Tensor]) -> GraphBuilder:
    builders = {id(t.builder): t.builder for t in tensors}
    if len(builders) != 1:
        raise GraphcnnError("tensors from different builders cannot be combined")
    return tensors[0].builder


def add(a: Tensor, b: Tensor) -> Tensor:
    return _builder_of([a, b]).op("add", [a, b])


def mul(a: Tensor, b: Tensor) -> Tensor:
    return _builder_of([a, b]).op("mul", [a, b])


def concat(tensors: Sequence[Tensor], axis: int = 1) -> Tensor:
    return _builder_of(tensors).op("concat", list(tensors), axis=axis)


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    return x.builder.op("reshape", [x], shape=tuple(shape))


def transpose(x: Tensor, perm: Sequence[int]) -> Tensor:
    return x.builder.op("transpose", [x], perm=tuple(perm))


# ----- layers ---------------------------------------------------------------------------------
class Layer:
    """A layer adds its nodes to a builder when called on a Tensor."""

    op = ""

    def __call__(self, x: Tensor) -> Tensor:
        try:
            self.check(x.shape)
            return self.emit(x)
        except ShapeError as e:
            msg = str(e)
            raise ShapeError(msg if msg.startswith(str(self)) else f"{self}: {msg}") from None

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise ShapeError naming both shapes when the input cannot fit this layer."""

    def emit(self, x: Tensor) -> Tensor:
        return x.builder.op(self.op, [x], name=self.name, **self.attrs())

    def attrs(self) -> dict[str, Any]:
        return {}

    @property
    def name(self) -> str:
        return self.op

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _ConvNd(Layer):
    nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool | np.ndarray = True,
                 weight: np.ndarray | None = None, seed: int | None = None):
        nd = self.nd
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, nd, "kernel_size")
        self.stride = _tuple(stride, nd, "stride")
        self.dilation = _tuple(dilation, nd, "dilation")
        if in_channels % groups or out_channels % groups:
            raise ShapeError(f"{self}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ShapeError(f"{self}: padding={padding!r} must be 'same', 'valid' or ints")
            total = [0 if padding == "valid" else d * (k - 1)
                     for k, d in zip(self.kernel_size, self.dilation)]
            self.pads = tuple(t // 2 for t in total) + tuple(t - t // 2 for t in total)
        else:
            p = _tuple(padding, nd, "padding")
            self.pads = p + p
        shape = (out_channels, in_channels // groups) + self.kernel_size
        fan_in = (in_channels // groups) * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in)
        rng = _generator(seed)
        self.weight = (_weight(weight, shape, self, "weight") if weight is not None else
                       rng.uniform(-bound, bound, shape).astype(np.float32))
        if isinstance(bias, (bool, np.bool_)):
            self.bias = rng.uniform(-bound, bound, out_channels).astype(np.float32) if bias else None
        else:
            self.bias = _weight(bias, (out_channels,), self, "bias")

    def check(self, shape):
        if len(shape) != self.nd + 2:
            raise ShapeError(f"{self}: expects a rank-{self.nd + 2} input (N, C, ...), "
                             f"got input shape {shape}")
        if shape[1] != self.in_channels:
            raise ShapeError(f"{self}: expects {self.in_channels} input channels, got input "
                             f"shape {shape} (weight shape {self.weight.shape})")

    def emit(self, x):
        params = {"weight": self.weight, **({"bias": self.bias} if self.bias is not None else {})}
        return x.builder.op("conv", [x], name="conv", params=params, strides=self.stride,
                            pads=self.pads, dilations=self.dilation, groups=self.groups)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride})")


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2


class Conv3d(_ConvNd):
    nd = 3


class ConvTranspose2d(Layer):
    """torch.nn.ConvTranspose2d: weight (in, out/groups, kh, kw); out = (in-1)*stride
    - 2*padding + dilation*(k-1) + output_padding + 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool | np.ndarray = True,
                 dilation=1, weight: np.ndarray | None = None, seed: int | None = None):
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, 2, "kernel_size")
        self.stride = _tuple(stride, 2, "stride")
        self.dilation = _tuple(dilation, 2, "dilation")
        self.output_padding = _tuple(output_padding, 2, "output_padding")
        p = _tuple(padding, 2, "padding")
        self.pads = p + p
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ShapeError(f"{self}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        shape = (in_channels, out_channels // groups) + self.kernel_size
        # torch's fan_in of a transposed conv is weight.size(1) * the kernel taps
        bound = 1 / math.sqrt((out_channels // groups) * math.prod(self.kernel_size))
        rng = _generator(seed)
        self.weight = (_weight(weight, shape, self, "weight") if weight is not None else
                       rng.uniform(-bound, bound, shape).astype(np.float32))
        if isinstance(bias, (bool, np.bool_)):
            self.bias = rng.uniform(-bound, bound, out_channels).astype(np.float32) if bias else None
        else:
            self.bias = _weight(bias, (out_channels,), self, "bias")

    def check(self, shape):
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ShapeError(f"{self}: expects (N, {self.in_channels}, H, W), got input shape "
                             f"{shape} (weight shape {self.weight.shape})")

    def emit(self, x):
        params = {"weight": self.weight, **({"bias": self.bias} if self.bias is not None else {})}
        return x.builder.op("conv_transpose", [x], name="conv_transpose", params=params,
                            strides=self.stride, pads=self.pads, dilations=self.dilation,
                            output_padding=self.output_padding, groups=self.groups)

    def __repr__(self) -> str:
        return (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride})")


class Upsample(Layer):
    """torch.nn.Upsample over the spatial dims: mode "nearest" (source floor(dst / scale)) or
    "bilinear" (half-pixel centres, or align_corners); `size` or `scale_factor`."""

    op = "resize"

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest",
                 align_corners: bool | None = None):
        if (size is None) == (scale_factor is None):
            raise ShapeError("Upsample: give exactly one of size and scale_factor")
        if mode not in ("nearest", "bilinear"):
            raise ShapeError(f"Upsample: mode={mode!r} must be 'nearest' or 'bilinear'")
        if align_corners is not None and mode == "nearest":
            raise ShapeError("Upsample: align_corners only applies to mode='bilinear'")
        self.size = None if size is None else _tuple(size, 2, "size")
        self.scale_factor = None if scale_factor is None else tuple(
            float(s) for s in ((scale_factor,) * 2 if isinstance(scale_factor, (int, float))
                               else scale_factor))
        if self.scale_factor is not None and (len(self.scale_factor) != 2 or
                                              min(self.scale_factor) <= 0):
            raise ShapeError(f"Upsample: scale_factor={scale_factor!r} must be 1 or 2 "
                             f"numbers > 0")
        self.mode, self.align_corners = mode, bool(align_corners)

    def check(self, shape):
        if len(shape) != 4:
            raise ShapeError(f"{self}: expects (N, C, H, W), got input shape {shape}")

    def emit(self, x):
        n, c, h, w = x.shape
        if self.size is not None:
            out, scales = self.size, (self.size[0] / h, self.size[1] / w)
        else:
            scales = self.scale_factor
            out = (math.floor(h * scales[0]), math.floor(w * scales[1]))
        if self.align_corners:  # torch divides by the integer output length
            scales = (out[0] / h, out[1] / w)
        attrs = {"sizes": (n, c) + tuple(out), "scales": (1.0, 1.0) + tuple(scales)}
        if self.mode == "nearest":
            attrs.update(mode="nearest", coordinate_transformation_mode="asymmetric",
                         nearest_mode="floor")
        else:
            attrs.update(mode="linear", coordinate_transformation_mode=(
                "align_corners" if self.align_corners else "half_pixel"))
        return x.builder.op("resize", [x], name="upsample", **attrs)

    def __repr__(self) -> str:
        what = f"size={self.size}" if self.size else f"scale_factor={self.scale_factor}"
        return f"Upsample({what}, mode={self.mode!r})"


class ReLU(Layer):
    op = "relu"


class Sigmoid(Layer):
    op = "sigmoid"


class Hardswish(Layer):
    """x * relu6(x + 3) / 6, as PyTorch's nn.Hardswish (ONNX HardSwish)."""

    op = "hard_swish"


class SiLU(Layer):
    """x * sigmoid(x), as PyTorch's nn.SiLU."""

    op = "silu"


class Tanh(Layer):
    op = "tanh"


class Mish(Layer):
    """x * tanh(softplus(x)), as PyTorch's nn.Mish."""

    op = "mish"


class GELU(Layer):
    """PyTorch's nn.GELU: x / 2 * (1 + erf(x / sqrt(2))), or its tanh approximation."""

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ShapeError(f"GELU: unknown approximate {approximate!r}; expected 'none' or "
                             f"'tanh'")
        self.approximate = approximate

    @property
    def op(self) -> str:
        return "gelu" if self.approximate == "none" else "gelu_tanh"


class ELU(Layer):
    op = "elu"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def attrs(self):
        return {"alpha": float(self.alpha)}


class Softplus(Layer):
    """log(1 + exp(x)), PyTorch's nn.Softplus at its default beta = 1 (its threshold only
    switches to the identity where the two agree in float32)."""

    op = "softplus"

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        if beta != 1.0:
            raise ShapeError(f"Softplus: beta={beta!r} is not supported (beta = 1 only)")
        self.beta, self.threshold = beta, threshold


class Identity(Layer):
    op = "identity"


class LeakyReLU(Layer):
    op = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def attrs(self):
        return {"alpha": float(self.negative_slope)}


class ReLU6(Layer):
    op = "clip"

    def attrs(self):
        return {"min": 0.0, "max": 6.0}

    @property
    def name(self) -> str:
        return "relu6"


class Dropout(Layer):
    op = "dropout"

    def __init__(self, p: float = 0.5):
        self.p = p

    def attrs(self):
        return {"ratio": float(self.p)}


class Softmax(Layer):
    op = "softmax"

    def __init__(self, dim: int = -1):
        self.dim = dim

    def attrs(self):
        return {"axis": self.dim}


class LogSoftmax(Softmax):
    op = "log_softmax"


class _PoolNd(Layer):
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
        self.kernel_size = _tuple(kernel_size, self.nd, "kernel_size")
        self.stride = _tuple(stride if stride is not None else kernel_size, self.nd, "stride")
        p = _tuple(padding, self.nd, "padding")
        self.pads, self.dilation, self.ceil_mode = p + p, _tuple(dilation, self.nd, "dilation"), ceil_mode

    def check(self, shape):
        if len(shape) != self.nd + 2:
            raise ShapeError(f"{self}: expects a rank-{self.nd + 2} input (N, C, ...), "
                             f"got input shape {shape}")

    def attrs(self):
        return {"kernel_shape": self.kernel_size, "strides": self.stride, "pads": self.pads,
                "dilations": self.dilation, "ceil_mode": self.ceil_mode}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool1d(_PoolNd):
    op, nd = "max_pool", 1


class MaxPool2d(_PoolNd):
    op, nd = "max_pool", 2


class MaxPool3d(_PoolNd):
    op, nd = "max_pool", 3


class SumPool1d(_PoolNd):
    op, nd = "sum_pool", 1


class SumPool2d(_PoolNd):
    op, nd = "sum_pool", 2


class _AvgPoolNd(_PoolNd):
    op = "avg_pool"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = count_include_pad

    def attrs(self):
        return {**super().attrs(), "count_include_pad": self.count_include_pad}


class AvgPool1d(_AvgPoolNd):
    nd = 1


class AvgPool2d(_AvgPoolNd):
    nd = 2


class AvgPool3d(_AvgPoolNd):
    nd = 3


class GlobalAvgPool2d(Layer):
    op = "global_avg_pool"


class GlobalMaxPool2d(Layer):
    op = "global_max_pool"


class GlobalMaxPool1d(Layer):
    """Max over the length of (N, C, L): a text CNN's max over time."""

    op = "global_max_pool"

    def check(self, shape):
        if len(shape) != 3:
            raise ShapeError(f"{self}: expects (N, C, L), got input shape {shape}")


class Embedding(Layer):
    """torch.nn.Embedding: int64/int32 token ids (any shape) -> their rows of a float32
    table (num_embeddings, embedding_dim), default weight N(0, 1). Ids are checked at run
    time: one outside [-num_embeddings, num_embeddings) is an InputError (negative ids wrap,
    as ONNX Gather's)."""

    op = "gather"

    def __init__(self, num_embeddings: int, embedding_dim: int, weight: np.ndarray | None = None,
                 seed: int | None = None):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        shape = (num_embeddings, embedding_dim)
        self.weight = (_weight(weight, shape, self, "weight") if weight is not None else
                       _generator(seed).standard_normal(shape).astype(np.float32))

    def emit(self, x):
        if x.value.type.dtype not in ("int64", "int32"):
            raise ShapeError(f"{self}: takes int64 or int32 token ids, got {x.value.type} "
                             f"(declare the input with dtype='int64')")
        g = x.builder.graph
        name = g.unique_name("embedding")
        table = g.add_constant(self.weight, f"{name}.weight")
        g._names.discard(name)  # add_node reserves it again
        return Tensor(x.builder, g.apply("gather", [table, x.value], {"axis": 0}, name=name))

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


class Flatten(Layer):
    """PyTorch's Flatten(start_dim=1, end_dim=-1)."""

    op = "flatten"

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def emit(self, x):
        rank = len(x.shape)
        start, end = self.start_dim % rank, self.end_dim % rank
        if end == rank - 1:
            return x.builder.op("flatten", [x], axis=start)
        shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
        return x.builder.op("reshape", [x], name="flatten", shape=shape)


class Dense(Layer):
    """y = x @ weight.T + bias, weight (out_features, in_features) as in torch.nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool | np.ndarray = True,
                 weight: np.ndarray | None = None, seed: int | None = None):
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        rng = _generator(seed)
        shape = (out_features, in_features)
        self.weight = (_weight(weight, shape, self, "weight") if weight is not None else
                       rng.uniform(-bound, bound, shape).astype(np.float32))
        if isinstance(bias, (bool, np.bool_)):
            self.bias = rng.uniform(-bound, bound, out_features).astype(np.float32) if bias else None
        else:
            self.bias = _weight(bias, (out_features,), self, "bias")

    def check(self, shape):
        if len(shape) != 2 or shape[1] != self.in_features:
            raise ShapeError(f"{self}: expects input (N, {self.in_features}), got input shape "
                             f"{shape} (weight shape {self.weight.shape}); add a Flatten?")

    def emit(self, x):
        params = {"weight": self.weight, **({"bias": self.bias} if self.bias is not None else {})}
        return x.builder.op("gemm", [x], name="dense", params=params, transB=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_features}, {self.out_features})"


Linear = Dense


class BatchNorm2d(Layer):
    """Inference batch norm with running statistics (defaults: weight 1, bias 0, mean 0, var 1)."""

    op = "batch_norm"

    def __init__(self, num_features: int, eps: float = 1e-5, weight=None, bias=None,
                 running_mean=None, running_var=None):
        c = (num_features,)
        self.num_features, self.eps = num_features, eps
        self.weight = _weight(weight if weight is not None else np.ones(c), c, self, "weight")
        self.bias = _weight(bias if bias is not None else np.zeros(c), c, self, "bias")
        self.running_mean = _weight(running_mean if running_mean is not None else np.zeros(c), c,
                                    self, "running_mean")
        self.running_var = _weight(running_var if running_var is not None else np.ones(c), c,
                                   self, "running_var")

    def check(self, shape):
        if len(shape) < 2 or shape[1] != self.num_features:
            raise ShapeError(f"{self}: expects {self.num_features} channels, got input shape {shape}")

    def emit(self, x):
        params = {"weight": self.weight, "bias": self.bias, "running_mean": self.running_mean,
                  "running_var": self.running_var}
        return x.builder.op("batch_norm", [x], name="bn", params=params, epsilon=self.eps)

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.num_features})"


class BatchNorm1d(BatchNorm2d):
    """Inference batch norm over (N, C) or (N, C, L), as torch.nn.BatchNorm1d."""

    def check(self, shape):
        if len(shape) not in (2, 3):
            raise ShapeError(f"{self}: expects input (N, C) or (N, C, L), got input shape {shape}")
        super().check(shape)

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.num_features})"


def _affine(value, default: float, shape: tuple[int, ...], layer: Layer, what: str
            ) -> np.ndarray:
    return _weight(value if value is not None else np.full(shape, default), shape, layer, what)


class LayerNorm(Layer):
    """torch.nn.LayerNorm: standardise over the last len(normalized_shape) dims, then the
    elementwise weight and bias (ones and zeros by default; none when elementwise_affine is
    False)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool | np.ndarray = True, weight: np.ndarray | None = None):
        self.normalized_shape = (int(normalized_shape),) if isinstance(
            normalized_shape, (int, np.integer)) else tuple(int(d) for d in normalized_shape)
        if eps < 0:
            raise ShapeError(f"LayerNorm: eps {eps} must be >= 0")
        self.eps, shape = eps, self.normalized_shape
        self.weight = _affine(weight if elementwise_affine else None, 1.0, shape, self, "weight")
        has_bias = elementwise_affine and not (isinstance(bias, bool) and not bias)
        self.bias = (_affine(None if isinstance(bias, bool) else bias, 0.0, shape, self, "bias")
                     if has_bias else None)

    def check(self, shape):
        k = len(self.normalized_shape)
        if len(shape) < k or tuple(shape[-k:]) != self.normalized_shape:
            raise ShapeError(f"{self}: the input's last dims must be {self.normalized_shape}, "
                             f"got input shape {shape}")

    def emit(self, x):
        params = {"weight": self.weight, **({"bias": self.bias} if self.bias is not None else {})}
        return x.builder.op("layer_norm", [x], name="layer_norm", params=params,
                            axis=len(x.shape) - len(self.normalized_shape), epsilon=self.eps)

    def __repr__(self) -> str:
        return f"LayerNorm({self.normalized_shape})"


class GroupNorm(Layer):
    """torch.nn.GroupNorm: standardise per (image, group of channels), then per-channel weight
    and bias (ones and zeros by default)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, weight: np.ndarray | None = None,
                 bias: np.ndarray | None = None):
        if num_groups < 1 or num_channels % num_groups:
            raise ShapeError(f"GroupNorm: num_groups {num_groups} must divide num_channels "
                             f"{num_channels}")
        if eps < 0:
            raise ShapeError(f"GroupNorm: eps {eps} must be >= 0")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        c = (num_channels,)
        self.weight = _affine(weight if affine else None, 1.0, c, self, "weight")
        self.bias = _affine(bias if affine else None, 0.0, c, self, "bias")

    def check(self, shape):
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ShapeError(f"{self}: expects {self.num_channels} channels, got input shape "
                             f"{shape}")

    def emit(self, x):
        return x.builder.op("group_norm", [x], name="group_norm",
                            params={"weight": self.weight, "bias": self.bias},
                            num_groups=self.num_groups, epsilon=self.eps)

    def __repr__(self) -> str:
        return f"GroupNorm({self.num_groups}, {self.num_channels})"


class InstanceNorm2d(GroupNorm):
    """torch.nn.InstanceNorm2d (no running statistics): one group per channel; affine=False
    by default, as in PyTorch."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False,
                 weight: np.ndarray | None = None, bias: np.ndarray | None = None):
        super().__init__(num_features, num_features, eps, affine, weight, bias)

    def check(self, shape):
        if len(shape) != 4:
            raise ShapeError(f"{self}: expects input (N, C, H, W), got input shape {shape}")
        super().check(shape)

    def __repr__(self) -> str:
        return f"InstanceNorm2d({self.num_channels})"


class AdaptiveAvgPool2d(Layer):
    """torch.nn.AdaptiveAvgPool2d(output_size): an int, or (h, w) with None keeping the input
    size. Output 1x1 is the global average pool, sizes dividing the input an average pool,
    others the adaptive_avg_pool op (PyTorch's bins)."""

    def __init__(self, output_size):
        size = (output_size, output_size) if output_size is None or isinstance(
            output_size, (int, np.integer)) else tuple(output_size)
        if len(size) != 2 or any(s is not None and int(s) < 1 for s in size):
            raise ShapeError(f"AdaptiveAvgPool2d: output_size {output_size!r} must be a "
                             f"positive int or two (or None)")
        self.output_size = tuple(None if s is None else int(s) for s in size)

    def check(self, shape):
        if len(shape) != 4:
            raise ShapeError(f"{self}: expects input (N, C, H, W), got input shape {shape}")

    def emit(self, x):
        spatial = x.shape[2:]
        out = tuple(s if o is None else o for s, o in zip(spatial, self.output_size))
        if out == (1, 1):
            return x.builder.op("global_avg_pool", [x], name="adaptive_avg_pool")
        if all(s % o == 0 for s, o in zip(spatial, out)):
            kernel = tuple(s // o for s, o in zip(spatial, out))
            return x.builder.op("avg_pool", [x], name="adaptive_avg_pool", kernel_shape=kernel,
                                strides=kernel)
        return x.builder.op("adaptive_avg_pool", [x], name="adaptive_avg_pool",
                            output_size=out)

    def __repr__(self) -> str:
        return f"AdaptiveAvgPool2d({self.output_size})"


class LocalResponseNorm(Layer):
    op = "lrn"

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def attrs(self):
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "bias": self.k}


LRN = LocalResponseNorm


class ZeroPad2d(Layer):
    """PyTorch's ZeroPad2d(padding): int or (left, right, top, bottom)."""

    op = "pad"

    def __init__(self, padding):
        self.padding = _tuple(padding, 4, "padding") if not isinstance(padding, int) else (padding,) * 4

    def attrs(self):
        left, right, top, bottom = self.padding
        return {"pads": (0, 0, top, left, 0, 0, bottom, right)}


class Sequential(Layer):
    """Layers applied in order; `build(input_shape)` makes a Graph with one input 'input'."""

    def __init__(self, *layers: Layer):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise GraphcnnError(f"Sequential item {i} is {layer!r}, not a graphcnn layer")
        self.layers = list(layers)

    def __call__(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            try:
                x = layer(x)
            except ShapeError as e:
                raise ShapeError(f"layer {i} {e}") from None
        return x

    def build(self, input_shape: Sequence[int], name: str = "model",
              input_name: str = "input", input_dtype: str = "float32") -> Graph:
        """`input_dtype`: "int64" (or "int32") for token ids into an Embedding."""
        builder = GraphBuilder(name)
        return builder.build(self(builder.input(input_name, input_shape, input_dtype)))

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"
