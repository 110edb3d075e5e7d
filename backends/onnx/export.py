"""ONNX export: a Graph as a standard onnx.ModelProto at opset 19 (the "ai.onnx" domain).

Opset 19 is fixed so exported files mean the same thing everywhere: it has AveragePool with
dilations and the input forms of Pad / Clip / Squeeze / Unsqueeze / Reshape. Every op exports
exactly, as a table of one small function per op (the activations, binary elementwise ops and
pools from their op tables' ONNX mappings):

- fused epilogues (conv or gemm carrying residual / activation, a conv's max pool) become
  Conv / Gemm followed by Add, the activation node and MaxPool;
- sum_pool has no ONNX op: it becomes a depthwise Conv with a ones kernel, which sums the same
  windows (ceil_mode becomes extra end padding, zero like sum pooling's own padding);
- ceil_mode is written only where it adds windows, and an axis whose last ceil window the spec
  drops (it would start in the end padding) gets its end pad trimmed or its unread tail sliced:
  onnx's shape inference keeps that window, so the literal attributes fail the full check;
- the blocked layout (to_blocked / from_blocked, layout="NCHWc" conv and pools) becomes
  Pad + Reshape + Transpose sequences around the plain-layout op.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphcnn.errors import UnsupportedOpError
from graphcnn.ir import Graph, Node, Value
from graphcnn.ops import ACTIVATIONS, BINARY_OPS, POOL_OPS, REDUCTIONS, get_activation
from graphcnn.ops.opaque import OPAQUE, bind, node_proto
from graphcnn.ops.pool import adaptive_bins, pool_output_shape
from graphcnn.ops.spatial import space_to_depth_perm
from graphcnn.ops.tensor import channel_shuffle_sources

OPSET = 19
IR_VERSION = 9  # the IR version that opset 19 shipped with


class Emitter:
    """Collects ONNX nodes and initializers; hands out unique names for intermediates."""

    def __init__(self, graph: Graph):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names = {v.name for v in graph.values()}
        self.counter = 0
        self.domains: set[str] = set()  # custom domains of kept ONNX nodes

    def fresh(self, hint: str) -> str:
        while True:
            self.counter += 1
            name = f"{hint}__{self.counter}"
            if name not in self.names:
                self.names.add(name)
                return name

    def const(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add(self, op_type: str, inputs: list[str], output: str | None = None, hint: str = "t",
            **attrs) -> str:
        output = output or self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output


def _ints(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


# ----- fused epilogue and layout helpers ---------------------------------------------------------
def _activation(e: Emitter, name: str, params: tuple, x: str, out: str | None, hint: str) -> str:
    """The ONNX node of a table activation (graphcnn.ops.ACTIVATIONS) with `params`: its
    attributes, or constant inputs from the mapping's `inputs_since` opset on (Clip); the ones
    without an ONNX op at OPSET as the standard ops they expand to (_EXPANDED)."""
    onx = get_activation(name).onnx
    if onx is None or onx.versions[0] > OPSET:
        if name in _EXPANDED:
            return _EXPANDED[name](e, x, out, hint)
        raise UnsupportedOpError(f"node {hint!r}: activation {name!r} has no ONNX op at opset "
                                 f"{OPSET}", {name: [hint]})
    inputs, attrs = [x], {}
    if onx.inputs_since is not None and OPSET >= onx.inputs_since:
        inputs += [e.const(np.array(p, np.float32), f"{name}_{key}")
                   for (key, _), p in zip(onx.attrs, params)]
    else:
        attrs = {key: float(p) for (key, _), p in zip(onx.attrs, params)}
    if onx.variant is not None:
        attrs[onx.variant[0]] = onx.variant[1]
    return e.add(onx.op_type, inputs, out, hint=hint, **attrs)


def _silu(e: Emitter, x: str, out: str | None, hint: str) -> str:
    return e.add("Mul", [x, e.add("Sigmoid", [x], hint=hint)], out, hint=hint)


def _gelu(e: Emitter, x: str, out: str | None, hint: str) -> str:
    """x * 0.5 * (1 + erf(x * sqrt(1/2))), in the reference's order (onnxruntime's Gelu-20)."""
    def c(v: float) -> str:
        return e.const(np.array(v, np.float32), f"{hint}_c")
    erf = e.add("Erf", [e.add("Mul", [x, c(0.7071067811865476)], hint=hint)], hint=hint)
    half = e.add("Mul", [x, c(0.5)], hint=hint)
    return e.add("Mul", [half, e.add("Add", [c(1.0), erf], hint=hint)], out, hint=hint)


def _gelu_tanh(e: Emitter, x: str, out: str | None, hint: str) -> str:
    def c(v: float) -> str:
        return e.const(np.array(v, np.float32), f"{hint}_c")
    cube = e.add("Mul", [e.add("Mul", [e.add("Mul", [c(0.044715), x], hint=hint), x],
                               hint=hint), x], hint=hint)
    inner = e.add("Mul", [c(0.7978845608028654), e.add("Add", [x, cube], hint=hint)], hint=hint)
    half = e.add("Mul", [x, c(0.5)], hint=hint)
    return e.add("Mul", [half, e.add("Add", [c(1.0), e.add("Tanh", [inner], hint=hint)],
                                     hint=hint)], out, hint=hint)


# activations with no ONNX op (silu) or none yet at OPSET (Gelu-20): the ops they expand to
_EXPANDED: dict[str, Callable[[Emitter, str, str | None, str], str]] = {
    "silu": _silu, "gelu": _gelu, "gelu_tanh": _gelu_tanh,
}


def _epilogue(e: Emitter, node: Node, y: str, out: str | None, residual: str | None = None) -> str:
    """Append residual add, activation and a conv's max pool after `y`; the last node writes
    `out` (or a fresh name)."""
    steps: list[Callable[[str, str | None], str]] = []
    if residual is not None:
        steps.append(lambda x, o: e.add("Add", [x, residual], o, hint=node.name))
    act, params = node.attrs["activation"], tuple(node.attrs["activation_params"])
    if act != "none":
        steps.append(lambda x, o: _activation(e, act, params, x, o, node.name))
    pool = node.attrs.get("pool")  # a conv's fused max pool: window = stride
    if pool:
        steps.append(lambda x, o: e.add("MaxPool", [x], o, hint=node.name,
                                        kernel_shape=list(pool), strides=list(pool)))
    if not steps:
        return e.add("Identity", [y], out) if out else y
    for i, step in enumerate(steps):
        y = step(y, out if i == len(steps) - 1 else None)
    return y


def _to_blocked(e: Emitter, x: str, shape: tuple[int, ...], block: int, out: str | None = None) -> str:
    n, c, spatial = shape[0], shape[1], shape[2:]
    cb = -(-c // block)
    if cb * block != c:
        pads = [0] * (2 * len(shape))
        pads[1 + len(shape)] = cb * block - c
        x = e.add("Pad", [x, e.const(_ints(pads), "pads")], hint="pad_channels")
    x = e.add("Reshape", [x, e.const(_ints((n, cb, block) + spatial), "shape")], hint="split_block")
    perm = [0, 1] + list(range(3, 3 + len(spatial))) + [2]
    return e.add("Transpose", [x], out, hint="to_blocked", perm=perm)


def _from_blocked(e: Emitter, x: str, shape: tuple[int, ...], channels: int,
                  out: str | None = None) -> str:
    n, cb, block, spatial = shape[0], shape[1], shape[-1], shape[2:-1]
    perm = [0, 1, len(shape) - 1] + list(range(2, 2 + len(spatial)))
    x = e.add("Transpose", [x], hint="from_blocked", perm=perm)
    x = e.add("Reshape", [x, e.const(_ints((n, cb * block) + spatial), "shape")],
              None if cb * block != channels else out, hint="merge_block")
    if cb * block == channels:
        return x
    return e.add("Slice", [x, e.const(_ints([0]), "starts"), e.const(_ints([channels]), "ends"),
                           e.const(_ints([1]), "axes")], out, hint="drop_pad_channels")


def _blocked_io(e: Emitter, node: Node, channels_in: int, emit_plain: Callable[[str], str],
                channels_out: int) -> None:
    """Run a plain-layout emission between from_blocked and to_blocked conversions."""
    x = _from_blocked(e, node.inputs[0].name, node.inputs[0].shape, channels_in)
    y = emit_plain(x)
    plain_shape = (node.outputs[0].shape[0], channels_out) + node.outputs[0].shape[2:-1]
    _to_blocked(e, y, plain_shape, node.outputs[0].shape[-1], node.outputs[0].name)


# ----- per-op exporters ---------------------------------------------------------------------------
def _conv(e: Emitter, node: Node) -> None:
    a, w = node.attrs, node.inputs[1]
    blocked = a["layout"] == "NCHWc"
    residual = node.inputs[3] if a["residual"] else None

    def plain(x: str, out: str | None = None) -> str:
        args = [x, w.name] + ([node.inputs[2].name] if len(node.inputs) >= 3 else [])
        y = e.add("Conv", args, hint=node.name, strides=list(a["strides"]), pads=list(a["pads"]),
                  dilations=list(a["dilations"]), group=a["groups"],
                  kernel_shape=list(w.shape[2:]))
        r = None
        if residual is not None:
            r = (_from_blocked(e, residual.name, residual.shape, w.shape[0]) if blocked
                 else residual.name)
        return _epilogue(e, node, y, out, r)

    if blocked:
        _blocked_io(e, node, w.shape[1] * a["groups"], plain, w.shape[0])
    else:
        plain(node.inputs[0].name, node.outputs[0].name)


def _plain_shape(v: Value, layout: str) -> tuple[int, ...]:
    s = v.shape
    return (s[0], s[1] * s[-1]) + s[2:-1] if layout == "NCHWc" else s


def _pool_attrs(node: Node) -> dict:
    a = node.attrs
    ceil = bool(a["ceil_mode"])
    if ceil:
        # ceil_mode only matters when it adds windows; when the spec drops the extra window
        # (it would start in the end padding) the result is the floor-mode one, and saying so
        # keeps onnx's shape inference, which does not drop that window, in agreement.
        shape = _plain_shape(node.inputs[0], a["layout"])
        out = pool_output_shape(a, shape)
        ceil = out != pool_output_shape({**a, "ceil_mode": False}, shape)
    pads, crop = list(a["pads"]), {}
    if ceil:  # other axes may still drop a window: trim them to what their last window reads
        nd = len(out)
        for i in range(nd):
            span = (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1
            need = (out[i] - 1) * a["strides"][i] + span - shape[2 + i] - pads[i]
            pads[nd + i] = min(pads[nd + i], max(0, need))
            if need < 0:  # the input's tail is never read: slice it off (exact)
                crop[2 + i] = shape[2 + i] + need
    return {"kernel_shape": list(a["kernel_shape"]), "strides": list(a["strides"]),
            "pads": pads, "ceil_mode": int(ceil), "crop": crop}


def _crop(e: Emitter, x: str, crop: dict[int, int], hint: str) -> str:
    if not crop:
        return x
    axes = sorted(crop)
    return e.add("Slice", [x, e.const(_ints([0] * len(axes)), "starts"),
                           e.const(_ints([crop[i] for i in axes]), "ends"),
                           e.const(_ints(axes), "axes")], hint=hint)


def _pool(onnx_op: str) -> Callable[[Emitter, Node], None]:
    def export(e: Emitter, node: Node) -> None:
        a = node.attrs
        attrs = {**_pool_attrs(node), "dilations": list(a["dilations"])}
        crop = attrs.pop("crop")
        if onnx_op == "AveragePool":
            attrs["count_include_pad"] = int(a["count_include_pad"])
        if onnx_op == "LpPool":
            attrs["p"] = int(a["p"])

        def plain(x: str, final: str | None = None) -> str:
            return e.add(onnx_op, [_crop(e, x, crop, node.name)], final, hint=node.name, **attrs)

        if a["layout"] == "NCHWc":
            c = node.inputs[0].shape[1] * node.inputs[0].shape[-1]
            _blocked_io(e, node, c, plain, c)
        else:
            plain(node.inputs[0].name, node.outputs[0].name)
    return export


def _sum_pool(e: Emitter, node: Node) -> None:
    a = node.attrs
    blocked = a["layout"] == "NCHWc"
    in_shape = node.inputs[0].shape
    plain_shape = (in_shape[0], in_shape[1] * in_shape[-1]) + in_shape[2:-1] if blocked else in_shape
    nd, c = len(plain_shape) - 2, plain_shape[1]
    out = pool_output_shape(a, plain_shape)
    pads = list(a["pads"])
    for i in range(nd):  # ceil_mode windows past the end padding: pad further with zeros
        span = (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1
        pads[nd + i] = max(pads[nd + i], (out[i] - 1) * a["strides"][i] + span
                           - plain_shape[2 + i] - pads[i])
    ones = e.const(np.ones((c, 1) + tuple(a["kernel_shape"]), np.float32), "sum_pool_ones")

    def plain(x: str, final: str | None = None) -> str:
        return e.add("Conv", [x, ones], final, hint=node.name, strides=list(a["strides"]),
                     pads=pads, dilations=list(a["dilations"]), group=c,
                     kernel_shape=list(a["kernel_shape"]))

    if blocked:
        _blocked_io(e, node, c, plain, c)
    else:
        plain(node.inputs[0].name, node.outputs[0].name)


def _global_pool(onnx_op: str) -> Callable[[Emitter, Node], None]:
    def export(e: Emitter, node: Node) -> None:
        attrs = {"p": int(node.attrs["p"])} if "p" in node.attrs else {}
        if node.attrs["layout"] == "NCHWc":
            c = node.inputs[0].shape[1] * node.inputs[0].shape[-1]
            _blocked_io(e, node, c, lambda x: e.add(onnx_op, [x], hint=node.name, **attrs), c)
        else:
            e.add(onnx_op, [node.inputs[0].name], node.outputs[0].name, **attrs)
    return export


def _batch_norm(e: Emitter, node: Node) -> None:
    def plain(x: str, out: str | None = None) -> str:
        y = e.add("BatchNormalization", [x] + [v.name for v in node.inputs[1:]], hint=node.name,
                  epsilon=float(node.attrs["epsilon"]))
        return _epilogue(e, node, y, out)

    if node.attrs["layout"] == "NCHWc":  # parameters cover every blocked channel
        c = node.inputs[0].shape[1] * node.inputs[0].shape[-1]
        _blocked_io(e, node, c, plain, c)
    else:
        plain(node.inputs[0].name, node.outputs[0].name)


def _gemm(e: Emitter, node: Node) -> None:
    a = node.attrs
    y = e.add("Gemm", [v.name for v in node.inputs], hint=node.name, transA=a["transA"],
              transB=a["transB"], alpha=float(a["alpha"]), beta=float(a["beta"]))
    _epilogue(e, node, y, node.outputs[0].name)


def _simple(onnx_op: str, attrs: Callable[[Node], dict] = lambda n: {}) -> Callable:
    def export(e: Emitter, node: Node) -> None:
        e.add(onnx_op, [v.name for v in node.inputs], node.outputs[0].name, **attrs(node))
    return export


def _with_const_input(onnx_op: str, make: Callable[[Node], np.ndarray], hint: str,
                      attrs: Callable[[Node], dict] = lambda n: {}) -> Callable:
    def export(e: Emitter, node: Node) -> None:
        e.add(onnx_op, [node.inputs[0].name, e.const(make(node), hint)], node.outputs[0].name,
              **attrs(node))
    return export


def _activation_op(name: str) -> Callable[[Emitter, Node], None]:
    act = ACTIVATIONS[name]

    def export(e: Emitter, node: Node) -> None:
        _activation(e, name, act.params(node.attrs), node.inputs[0].name, node.outputs[0].name,
                    node.name)
    return export


def _pad(e: Emitter, node: Node) -> None:
    value = e.const(np.array(node.attrs["value"], np.float32), "pad_value")
    e.add("Pad", [node.inputs[0].name, e.const(_ints(node.attrs["pads"]), "pads"), value],
          node.outputs[0].name, mode=node.attrs["mode"])


def _conv_transpose(e: Emitter, node: Node) -> None:
    """ConvTranspose with the non-negative pads; a negative pad (an output extended past the
    natural size) becomes a zero Pad after it, and then the bias is added to every cell."""
    a = node.attrs
    nd = len(a["strides"])
    pads = list(a["pads"])
    extend = [max(0, -p) for p in pads]
    attrs = {"strides": list(a["strides"]), "dilations": list(a["dilations"]),
             "pads": [max(0, p) for p in pads], "output_padding": list(a["output_padding"]),
             "group": a["groups"], "kernel_shape": list(node.inputs[1].shape[2:])}
    ins = [v.name for v in node.inputs]
    if not any(extend):
        e.add("ConvTranspose", ins, node.outputs[0].name, **attrs)
        return
    y = e.add("ConvTranspose", ins[:2], hint=node.name, **attrs)
    last = len(node.inputs) == 2
    full = [0, 0] + extend[:nd] + [0, 0] + extend[nd:]
    y = e.add("Pad", [y, e.const(_ints(full), "pads")], node.outputs[0].name if last else None,
              hint=node.name, mode="constant")
    if not last:
        bias = e.add("Reshape", [ins[2], e.const(_ints([-1] + [1] * nd), "shape")],
                     hint=f"{node.name}_bias")
        e.add("Add", [y, bias], node.outputs[0].name)


def _resize(e: Emitter, node: Node) -> None:
    """Resize-19 with the full output shape as `sizes`, or as `scales` when the coordinate
    scales are not sizes / input (a scale whose output width was fractional)."""
    a, x = node.attrs, node.inputs[0]
    by_sizes = all(np.isclose(s, o / i) for s, o, i in zip(a["scales"], a["sizes"], x.shape))
    roi = e.const(np.asarray(a["roi"], np.float32), "roi") if a["roi"] else ""
    ins = [x.name, roi, "" if by_sizes else e.const(np.asarray(a["scales"], np.float32),
                                                    "scales")]
    if by_sizes:
        ins.append(e.const(_ints(a["sizes"]), "sizes"))
    e.add("Resize", ins, node.outputs[0].name, mode=a["mode"],
          coordinate_transformation_mode=a["coordinate_transformation_mode"],
          nearest_mode=a["nearest_mode"], cubic_coeff_a=float(a["cubic_coeff_a"]),
          exclude_outside=a["exclude_outside"],
          extrapolation_value=float(a["extrapolation_value"]))


def _space_to_depth(e: Emitter, node: Node) -> None:
    """SpaceToDepth-13 has no mode: CRD is the Reshape -> Transpose -> Reshape it stands for."""
    a = node.attrs
    if a["mode"] == "DCR":
        e.add("SpaceToDepth", [node.inputs[0].name], node.outputs[0].name,
              blocksize=a["blocksize"])
        return
    n, c, h, w = node.inputs[0].shape
    bs = a["blocksize"]
    v = e.add("Reshape", [node.inputs[0].name, e.const(_ints([n, c, h // bs, bs, w // bs, bs]),
                                                       "shape")], hint=node.name)
    v = e.add("Transpose", [v], hint=node.name, perm=list(space_to_depth_perm("CRD")))
    e.add("Reshape", [v, e.const(_ints(node.outputs[0].shape), "shape")], node.outputs[0].name)


def _channel_shuffle(e: Emitter, node: Node) -> None:
    """Gather of the input channels in shuffled order (on the plain layout)."""
    c = node.attrs["channels"]
    sources = e.const(_ints(channel_shuffle_sources(c, node.attrs["groups"])), "shuffle")

    def plain(x: str, out: str | None = None) -> str:
        return e.add("Gather", [x, sources], out, hint=node.name, axis=1)

    if node.attrs["layout"] == "NCHWc":
        _blocked_io(e, node, c, plain, c)
    else:
        plain(node.inputs[0].name, node.outputs[0].name)


def _to_blocked_op(e: Emitter, node: Node) -> None:
    _to_blocked(e, node.inputs[0].name, node.inputs[0].shape, node.attrs["block"],
                node.outputs[0].name)


def _from_blocked_op(e: Emitter, node: Node) -> None:
    _from_blocked(e, node.inputs[0].name, node.inputs[0].shape, node.attrs["channels"],
                  node.outputs[0].name)


def _opaque(e: Emitter, node: Node) -> None:
    """A kept ONNX node (graphcnn/ops/opaque.py), converted from the file's opset to OPSET by
    onnx's version converter; a node it cannot convert is refused by name."""
    proto = node_proto(node.attrs)
    if node.attrs["opset"] != OPSET:
        proto = _convert_opaque(node, proto)
    e.nodes.append(bind(proto, node))
    if node.attrs["domain"] not in ("", "ai.onnx"):
        e.domains.add(node.attrs["domain"])


def _convert_opaque(node: Node, proto: onnx.NodeProto) -> onnx.NodeProto:
    from onnx import version_converter

    def info(name: str, v: Value) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, _ONNX_DTYPES[v.type.dtype], list(v.shape))

    present = [slot for slot in proto.input if slot]
    made = [slot for slot in proto.output if slot]
    one = helper.make_model(helper.make_graph(
        [proto], "one", [info(n, v) for n, v in zip(present, node.inputs)],
        [info(n, v) for n, v in zip(made, node.outputs)]),
        opset_imports=[helper.make_opsetid("", node.attrs["opset"])])
    try:
        converted = version_converter.convert_version(one, OPSET)
    except (RuntimeError, ValueError, IndexError) as err:  # the converter's C++ assertions
        raise UnsupportedOpError(
            f"cannot export node {node.name!r} (ONNX {node.attrs['op_type']} at opset "
            f"{node.attrs['opset']}) at opset {OPSET}: {err}",
            {node.attrs["op_type"]: [node.name]}) from None
    nodes = list(converted.graph.node)
    if len(nodes) != 1:
        raise UnsupportedOpError(
            f"cannot export node {node.name!r} (ONNX {node.attrs['op_type']} at opset "
            f"{node.attrs['opset']}) at opset {OPSET} as one node",
            {node.attrs["op_type"]: [node.name]})
    return nodes[0]


_ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE,
                "int64": TensorProto.INT64, "int32": TensorProto.INT32, "bool": TensorProto.BOOL}


def _slice(e: Emitter, node: Node) -> None:
    """Every axis with its normalised first index and step; an end past the front of a
    reversed axis is written as -(dim + 1), which ONNX clamps to "before index 0"."""
    a, dims = node.attrs, node.inputs[0].shape
    ends = [s + k * n if s + k * n >= 0 else -(d + 1)
            for s, k, n, d in zip(a["starts"], a["steps"], a["shape"], dims)]
    e.add("Slice", [node.inputs[0].name, e.const(_ints(a["starts"]), "starts"),
                    e.const(_ints(ends), "ends"), e.const(_ints(range(len(dims))), "axes"),
                    e.const(_ints(a["steps"]), "steps")], node.outputs[0].name)


def _split(e: Emitter, node: Node) -> None:
    outs = [v.name for v in node.outputs]
    e.nodes.append(helper.make_node("Split", [node.inputs[0].name,
                                              e.const(_ints(node.attrs["split"]), "split")],
                                    outs, name=node.name, axis=node.attrs["axis"]))


def _arg(onnx_op: str) -> Callable[[Emitter, Node], None]:
    return _simple(onnx_op, lambda n: {"axis": n.attrs["axis"], "keepdims": n.attrs["keepdims"],
                                       "select_last_index": n.attrs["select_last_index"]})


def _layer_norm(e: Emitter, node: Node) -> None:
    outs = [v.name for v in node.outputs]
    e.nodes.append(helper.make_node("LayerNormalization", [v.name for v in node.inputs], outs,
                                    name=outs[0], axis=node.attrs["axis"],
                                    epsilon=float(node.attrs["epsilon"])))


def _group_norm(e: Emitter, node: Node) -> None:
    """InstanceNormalization when every channel is a group; otherwise the groups as the
    channels of an InstanceNormalization on (N, G, C/G * spatial), then the per-channel scale
    and bias (GroupNormalization-18 at this opset has them per group only)."""
    x, scale, bias = (v.name for v in node.inputs)
    shape, groups, eps = node.inputs[0].shape, node.attrs["num_groups"], float(node.attrs["epsilon"])
    if node.attrs["layout"] == "NCHWc":  # an instance norm over every blocked channel
        c = shape[1] * shape[-1]
        _blocked_io(e, node, c, lambda v: e.add("InstanceNormalization", [v, scale, bias],
                                                hint=node.name, epsilon=eps), c)
        return
    if groups == shape[1] and len(shape) >= 3:
        e.add("InstanceNormalization", [x, scale, bias], node.outputs[0].name, hint=node.name,
              epsilon=eps)
        return
    grouped = e.add("Reshape", [x, e.const(_ints((shape[0], groups, -1)), "shape")],
                    hint=node.name)
    normed = e.add("InstanceNormalization", [grouped, e.const(np.ones(groups, np.float32), "one"),
                                             e.const(np.zeros(groups, np.float32), "zero")],
                   hint=node.name, epsilon=eps)
    back = e.add("Reshape", [normed, e.const(_ints(shape), "shape")], hint=node.name)
    per_channel = _ints((shape[1],) + (1,) * (len(shape) - 2))
    scaled = e.add("Mul", [back, e.add("Reshape", [scale, e.const(per_channel, "shape")],
                                       hint=node.name)], hint=node.name)
    e.add("Add", [scaled, e.add("Reshape", [bias, e.const(per_channel, "shape")],
                                hint=node.name)], node.outputs[0].name, hint=node.name)


def _channel_norm(e: Emitter, node: Node) -> None:
    """Transpose to channels-last, LayerNormalization over the last axis, transpose back."""
    c, blocked = node.attrs["channels"], node.attrs["layout"] == "NCHWc"
    rank = node.inputs[0].type.rank - blocked
    params = [e.const(np.ascontiguousarray(p.data[:c]), "ln") if blocked else p.name
              for p in node.inputs[1:]]

    def plain(x: str, final: str | None = None) -> str:
        last = e.add("Transpose", [x], hint=node.name, perm=[0] + list(range(2, rank)) + [1])
        normed = e.add("LayerNormalization", [last] + params, hint=node.name, axis=-1,
                       epsilon=float(node.attrs["epsilon"]))
        return e.add("Transpose", [normed], final, hint=node.name,
                     perm=[0, rank - 1] + list(range(1, rank - 1)))

    if blocked:
        _blocked_io(e, node, c, plain, c)
    else:
        plain(node.inputs[0].name, node.outputs[0].name)


def _blocked_concat(e: Emitter, node: Node) -> None:
    parts = [_from_blocked(e, v.name, v.shape, c)
             for v, c in zip(node.inputs, node.attrs["channels"])]
    y = e.add("Concat", parts, hint=node.name, axis=1)
    out = node.outputs[0].shape
    plain = (out[0], sum(node.attrs["channels"])) + out[2:-1]
    _to_blocked(e, y, plain, node.attrs["block"], node.outputs[0].name)


def _blocked_split(e: Emitter, node: Node) -> None:
    x = node.inputs[0]
    chans = list(node.attrs["channels"])
    plain = _from_blocked(e, x.name, x.shape, sum(chans))
    parts = [e.fresh(f"{node.name}_part") for _ in chans]
    e.nodes.append(helper.make_node("Split", [plain, e.const(_ints(chans), "split")], parts,
                                    name=e.fresh(node.name), axis=1))
    for p, c, y in zip(parts, chans, node.outputs):
        _to_blocked(e, p, (x.shape[0], c) + x.shape[2:-1], node.attrs["block"], y.name)


def _adaptive_avg_pool(e: Emitter, node: Node) -> None:
    """No ONNX op: the pool is linear, so (N, C, prod(spatial)) times the bin-averaging matrix
    (prod(spatial), prod(output_size)), reshaped back."""
    blocked = node.attrs["layout"] == "NCHWc"
    shape = node.inputs[0].shape
    plain_shape = (shape[0], shape[1] * shape[-1]) + shape[2:-1] if blocked else shape
    spatial, out = plain_shape[2:], tuple(node.attrs["output_size"])
    bins = [adaptive_bins(s, o) for s, o in zip(spatial, out)]
    matrix = np.zeros((int(np.prod(spatial)), int(np.prod(out))), np.float32)
    for j, index in enumerate(np.ndindex(*out)):
        cells = np.zeros(spatial, np.float32)
        cells[tuple(slice(*bins[i][k]) for i, k in enumerate(index))] = 1.0
        matrix[:, j] = cells.reshape(-1) / cells.sum()
    n, c = plain_shape[:2]

    def plain(x: str, final: str | None = None) -> str:
        flat = e.add("Reshape", [x, e.const(_ints((n, c, -1)), "shape")], hint=node.name)
        y = e.add("MatMul", [flat, e.const(matrix, "bins")], hint=node.name)
        return e.add("Reshape", [y, e.const(_ints((n, c) + out), "shape")], final,
                     hint=node.name)

    if blocked:
        _blocked_io(e, node, c, plain, c)
    else:
        plain(node.inputs[0].name, node.outputs[0].name)


EXPORTERS: dict[str, Callable[[Emitter, Node], None]] = {
    OPAQUE: _opaque,
    "conv": _conv,
    **{name: (_global_pool(p.onnx) if p.is_global else _pool(p.onnx))
       for name, p in POOL_OPS.items() if p.onnx is not None},
    "sum_pool": _sum_pool,
    "adaptive_avg_pool": _adaptive_avg_pool,
    "gemm": _gemm,
    "matmul": _simple("MatMul"),
    **{name: _activation_op(name) for name, act in ACTIVATIONS.items()
       if act.onnx is not None or name in _EXPANDED},
    "softmax": _simple("Softmax", lambda n: {"axis": n.attrs["axis"]}),
    "log_softmax": _simple("LogSoftmax", lambda n: {"axis": n.attrs["axis"]}),
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "channel_norm": _channel_norm,
    "lp_norm": _simple("LpNormalization", lambda n: {"axis": n.attrs["axis"], "p": n.attrs["p"]}),
    "mean_variance_norm": _simple("MeanVarianceNormalization",
                                  lambda n: {"axes": list(n.attrs["axes"])}),
    **{name: _with_const_input(r.onnx, lambda n: _ints(n.attrs["axes"]), "axes",
                               lambda n: {"keepdims": n.attrs["keepdims"]})
       for name, r in REDUCTIONS.items()},
    "flatten": _simple("Flatten", lambda n: {"axis": n.attrs["axis"]}),
    "reshape": _with_const_input("Reshape", lambda n: _ints(n.attrs["shape"]), "shape",
                                 lambda n: {"allowzero": int(0 in n.attrs["shape"])}),
    "transpose": _simple("Transpose", lambda n: {"perm": list(n.attrs["perm"])}),
    "concat": _simple("Concat", lambda n: {"axis": n.attrs["axis"]}),
    **{name: _simple(op.onnx.op_type) for name, op in BINARY_OPS.items()},
    "batch_norm": _batch_norm,
    "lrn": _simple("LRN", lambda n: {"size": n.attrs["size"], "alpha": float(n.attrs["alpha"]),
                                     "beta": float(n.attrs["beta"]), "bias": float(n.attrs["bias"])}),
    "dropout": _simple("Identity"),  # inference: dropout computes nothing
    "identity": _simple("Identity"),
    "pad": _pad,
    # graphcnn/ops/spatial.py
    "conv_transpose": _conv_transpose,
    "resize": _resize,
    "depth_to_space": _simple("DepthToSpace", lambda n: {"blocksize": n.attrs["blocksize"],
                                                         "mode": n.attrs["mode"]}),
    "space_to_depth": _space_to_depth,
    "squeeze": _with_const_input("Squeeze", lambda n: _ints(n.attrs["axes"]), "axes"),
    "unsqueeze": _with_const_input("Unsqueeze", lambda n: _ints(n.attrs["axes"]), "axes"),
    "channel_shuffle": _channel_shuffle,
    # graphcnn/ops/indexing.py
    "gather": _simple("Gather", lambda n: {"axis": n.attrs["axis"]}),
    "slice": _slice,
    "split": _split,
    "expand": _with_const_input("Expand", lambda n: _ints(n.attrs["shape"]), "shape"),
    "tile": _with_const_input("Tile", lambda n: _ints(n.attrs["repeats"]), "repeats"),
    "cast": _simple("Cast", lambda n: {"to": _ONNX_DTYPES[n.attrs["to"]]}),
    "where": _simple("Where"),
    "argmax": _arg("ArgMax"),
    "argmin": _arg("ArgMin"),
    "to_blocked": _to_blocked_op,
    "from_blocked": _from_blocked_op,
    "blocked_concat": _blocked_concat,
    "blocked_split": _blocked_split,
}

def _value_info(v: Value, name: str | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name or v.name, _ONNX_DTYPES[v.type.dtype], list(v.shape))


def to_onnx(graph: Graph, opset: int = OPSET, producer: str = "graphcnn") -> onnx.ModelProto:
    """The graph as an ONNX model; raises UnsupportedOpError listing every op it cannot express."""
    missing: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.op not in EXPORTERS:
            missing.setdefault(node.op, []).append(node.name)
    if missing:
        listing = "; ".join(f"{op} x{len(names)} ({', '.join(names[:5])})"
                            for op, names in sorted(missing.items()))
        raise UnsupportedOpError(f"cannot export to ONNX: {listing}", missing)
    e = Emitter(graph)
    e.initializers = [numpy_helper.from_array(np.ascontiguousarray(v.data), v.name)
                      for v in graph.constants]
    for node in graph.nodes:
        EXPORTERS[node.op](e, node)
    outputs, seen = [], set()
    for v in graph.outputs:
        name = v.name
        if v.producer is None or name in seen:  # an input, constant or repeated output
            name = e.add("Identity", [v.name], hint=f"{v.name}_out")
        seen.add(name)
        outputs.append(_value_info(v, name))
    g = helper.make_graph(e.nodes, graph.name, [_value_info(v) for v in graph.inputs], outputs,
                          initializer=e.initializers)
    model = helper.make_model(g, producer_name=producer, opset_imports=[
        helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in sorted(e.domains)])
    model.ir_version = IR_VERSION
    return model


def export_onnx(graph: Graph, path: str, **options) -> None:
    model = to_onnx(graph, **options)
    onnx.checker.check_model(model, full_check=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


