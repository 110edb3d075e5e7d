"""The import table's machinery: one `OpImporter` per ONNX op type and the per-node `Context`.

An importer is a small function `fn(ctx) -> Value | list[Value]` registered with `@importer`,
returning one Value per ONNX output. It reads inputs (`ctx.inputs`, `ctx.const(i)`), attributes
(`ctx.attr`) and emits IR through `ctx.emit` (which folds nodes whose inputs are all constant) or
`ctx.constant`. Helper ops that only ever compute shapes (Shape, Gather, Cast, ...) are
`fold_only`: they run at import time and a non-constant input makes them unsupported.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ..errors import ShapeError, UnsupportedOpError
from ..ir import Graph, TensorType, Value
from ..ops import get_op
from .onnx_safety import Limits, tensor_to_array
from .onnx_strict import as_typed


@dataclass(frozen=True)
class OpImporter:
    """How one ONNX op type is imported."""

    op_type: str
    fn: Callable[[Context], Any]
    versions: tuple[int, ...]  # supported since_versions of the op's schema
    attrs: tuple[str, ...] = ()  # ONNX attributes (and attribute-like inputs) handled
    fold_only: bool = False  # computed at import time only (needs constant inputs)
    notes: str = ""


IMPORTERS: dict[str, OpImporter] = {}


def importer(op_type: str, versions: Sequence[int], attrs: Sequence[str] = (),
             fold_only: bool = False, notes: str = "") -> Callable:
    def register(fn: Callable[[Context], Any]) -> Callable[[Context], Any]:
        if op_type in IMPORTERS:
            raise ValueError(f"ONNX importer for {op_type!r} defined twice")
        IMPORTERS[op_type] = OpImporter(op_type, fn, tuple(versions), tuple(attrs), fold_only,
                                        notes)
        return fn
    return register


class NotConstant(Exception):
    """An input that must be known at import time depends on runtime values."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


@dataclass
class Context:
    """State for importing one ONNX node into `graph`."""

    graph: Graph
    node: onnx.NodeProto
    name: str  # the IR name chosen for this node
    version: int  # since_version of the op's schema at the model's opset
    inputs: list[Value | None]  # None for an omitted optional input
    limits: Limits
    base_dir: str | None
    created: set[int] = field(default_factory=set)  # ids of Values made for this node
    rebatch: tuple[int, int] | None = None  # (the file's batch, the new one): onnx_batch
    _attrs: dict[str, onnx.AttributeProto] | None = None

    # ----- reading the node -----------------------------------------------------------------
    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def where(self) -> str:
        return f"node {self.name!r} ({self.op_type})"

    def has_attr(self, key: str) -> bool:
        return key in self._attr_protos()

    def attr(self, key: str, default: Any = None) -> Any:
        """A decoded attribute: ints, floats, strings (str), lists, or a TensorProto."""
        proto = self._attr_protos().get(key)
        if proto is None:
            return default
        proto = as_typed(proto)  # strict=False: read from where the data is
        if proto.type == onnx.AttributeProto.TENSOR:
            return proto.t
        value = onnx.helper.get_attribute_value(proto)
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, list):
            return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v
                    for v in value]
        return value

    def _attr_protos(self) -> dict[str, onnx.AttributeProto]:
        if self._attrs is None:
            self._attrs = {a.name: a for a in self.node.attribute}
        return self._attrs

    def input(self, i: int) -> Value | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def const(self, i: int, what: str) -> np.ndarray | None:
        """Input i's value, which must be known at import time; None if the input is omitted."""
        v = self.input(i)
        if v is None:
            return None
        if not v.is_constant:
            raise NotConstant(what)
        return v.data

    def const_ints(self, i: int, what: str) -> list[int] | None:
        """Input i as a 1-D (or scalar) integer constant; None if the input is omitted."""
        data = self.const(i, what)
        if data is None:
            return None
        if data.ndim > 1 or data.dtype.kind not in "iu":
            raise self.shape_error(f"{what} must be a 1-D integer tensor, got {data.dtype}"
                                   f"{list(data.shape)}")
        return [int(v) for v in data.reshape(-1)]

    def n_outputs(self) -> int:
        """Outputs the model asks for (trailing empty names do not count)."""
        names = list(self.node.output)
        while names and not names[-1]:
            names.pop()
        return len(names)

    def unsupported(self, what: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where}: {what}", {self.op_type: [self.name]})

    def shape_error(self, what: str) -> ShapeError:
        return ShapeError(f"{self.where}: {what}")

    def tensor(self, proto: onnx.TensorProto, what: str) -> np.ndarray:
        return tensor_to_array(proto, self.limits, self.base_dir, f"{self.where}: {what}")

    # ----- emitting IR ----------------------------------------------------------------------
    def constant(self, array: Any) -> Value:
        array = np.asarray(array)
        nbytes = self.limits.check_tensor("constant", array.shape, array.dtype.itemsize,
                                          ShapeError)
        self.limits.account("constant", nbytes)  # over the total: a ModelLoadError
        v = self.graph.add_constant(array, name=self.name)
        self.created.add(id(v))
        return v

    def emit(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None,
             suffix: str = "") -> Value:
        """One IR node (single output), or its value folded to a constant when every input is
        constant. `suffix` names helper nodes of a multi-node expansion."""
        attrs = dict(attrs or {})
        if all(v.is_constant for v in inputs):
            return self._fold(op, inputs, attrs)
        node = self.graph.add_node(op, inputs, attrs, name=self.name + suffix)
        for out in node.outputs:
            self._check_size(out.type)
            self.created.add(id(out))
        return node.outputs[0]

    def _fold(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any]) -> Value:
        opdef = get_op(op, self.name)
        types = [v.type for v in inputs]
        full = opdef.normalized(attrs, types)
        out_type = opdef.infer(full, types)[0]
        self._check_fold(out_type)
        with np.errstate(all="ignore"):
            y = opdef.run(full, *(v.data for v in inputs))[0]
        return self.constant(np.asarray(y, dtype=out_type.dtype).reshape(out_type.shape))

    def _check_size(self, t: TensorType) -> None:
        self.limits.check_tensor("output", t.shape,
                                 np.dtype(t.dtype).itemsize, ShapeError)

    def _check_fold(self, t: TensorType) -> None:
        """A folded value becomes a constant: both limits, before it is computed."""
        nbytes = self.limits.check_tensor("output", t.shape, np.dtype(t.dtype).itemsize,
                                          ShapeError)
        self.limits.check_room("constant", nbytes)
