"""Strict import: what onnx.checker refuses, and declared types that contradict the import.

The rules (each a ModelLoadError naming the node, its op and the attribute or value):
1. empty-graph: a graph without nodes.
2. no-outputs: a graph without outputs.
3. unknown-attribute: an attribute the op's schema (at the model's opset) does not have, e.g.
   Conv `stridez`; ignoring it would run the op with the default instead.
4. missing-attribute: a required attribute of the schema is absent (Concat without `axis`).
5. attribute-type: an attribute without a type (UNDEFINED), whose data sits in another field
   than its type's (or in several), or whose type is not the schema's.
6. declared-type: a graph output, value_info or initializer input declared with a dtype, a
   rank or a static dim that is not what the import computes.

`from_onnx(..., strict=False)` relaxes every rule: the import goes on as it would without the
check (an attribute is then read from the field its data is in), with one warning per relaxed
rule naming the first case and the count.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import AttributeProto as A

from ..errors import ModelLoadError
from ..ir import Value

RULES = {
    "empty-graph": "a graph without nodes accepted",
    "no-outputs": "a graph without outputs accepted",
    "unknown-attribute": "unknown attribute(s) ignored",
    "missing-attribute": "missing required attribute(s) defaulted",
    "attribute-type": "attribute type(s) that disagree with the schema or the data accepted",
    "declared-type": "declared type(s) that contradict the import ignored",
}

# attribute type -> the AttributeProto field that holds its data (singular fields first)
_FIELD = {A.FLOAT: "f", A.INT: "i", A.STRING: "s", A.TENSOR: "t", A.GRAPH: "g",
          A.SPARSE_TENSOR: "sparse_tensor", A.TYPE_PROTO: "tp", A.FLOATS: "floats",
          A.INTS: "ints", A.STRINGS: "strings", A.TENSORS: "tensors", A.GRAPHS: "graphs",
          A.SPARSE_TENSORS: "sparse_tensors", A.TYPE_PROTOS: "type_protos"}
_SINGULAR = frozenset({"f", "i", "s", "t", "g", "sparse_tensor", "tp"})
_TYPE_OF_FIELD = {f: t for t, f in _FIELD.items()}


def _type_name(t: int) -> str:
    return A.AttributeType.Name(t) if t in A.AttributeType.values() else str(t)


class Rules:
    """Applies the rules: raises at the first violation (strict), else collects them."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.relaxed: dict[str, list[str]] = {}

    def violation(self, rule: str, message: str) -> None:
        if self.strict:
            raise ModelLoadError(f"{message} (strict import; from_onnx(..., strict=False) "
                                 f"accepts it with a warning)")
        self.relaxed.setdefault(rule, []).append(message)

    def warnings(self) -> list[str]:
        """One message per relaxed rule, in the order of RULES."""
        out = []
        for rule, what in RULES.items():
            cases = self.relaxed.get(rule)
            if cases:
                more = f" (and {len(cases) - 1} more)" if len(cases) > 1 else ""
                out.append(f"strict=False: {len(cases)} {what} [{rule}]: {cases[0]}{more}")
        return out


def check_graph(g: onnx.GraphProto, rules: Rules) -> None:
    """Rules 1-2."""
    if not len(g.node):
        rules.violation("empty-graph", f"graph {g.name!r} has no nodes")
    if not len(g.output):
        rules.violation("no-outputs", f"graph {g.name!r} has no outputs")


def data_fields(a: onnx.AttributeProto) -> list[str]:
    """The fields of `a` that hold data."""
    return [f for f in _FIELD.values()
            if (a.HasField(f) if f in _SINGULAR else len(getattr(a, f)))]


def check_attributes(node: onnx.NodeProto, where: str, schema: onnx.defs.OpSchema,
                     rules: Rules) -> None:
    """Rules 3-5 for one node of the default domain, against its schema at the model's opset."""
    known = schema.attributes
    op = f"{schema.name}-{schema.since_version}"
    given = set()
    for a in node.attribute:
        given.add(a.name)
        spec = known.get(a.name)
        if a.ref_attr_name:
            rules.violation("attribute-type", f"{where}: attribute {a.name!r} refers to "
                            f"{a.ref_attr_name!r}, which only a function body can do")
            continue
        if spec is None:
            close = difflib.get_close_matches(a.name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            rules.violation("unknown-attribute", f"{where}: unknown attribute {a.name!r} ({op} "
                            f"takes {', '.join(sorted(known)) or 'none'}){hint}")
            continue
        fields = data_fields(a)
        want = int(spec.type.value)
        if a.type == A.UNDEFINED:
            rules.violation("attribute-type", f"{where}: attribute {a.name!r} has no type "
                            f"(UNDEFINED; {op} wants {_type_name(want)})")
        elif len(fields) > 1 or (fields and fields[0] != _FIELD.get(a.type)):
            rules.violation("attribute-type", f"{where}: attribute {a.name!r} has type "
                            f"{_type_name(a.type)} but data in field(s) {', '.join(fields)}")
        elif a.type != want:
            rules.violation("attribute-type", f"{where}: attribute {a.name!r} has type "
                            f"{_type_name(a.type)}, {op} wants {_type_name(want)}")
    for key, spec in sorted(known.items()):
        if spec.required and key not in given:
            rules.violation("missing-attribute", f"{where}: missing required attribute "
                            f"{key!r} ({_type_name(int(spec.type.value))})")


def as_typed(a: onnx.AttributeProto) -> onnx.AttributeProto:
    """`a` with the type of the one field its data is in (what a lenient import reads)."""
    field = _FIELD.get(a.type)
    if field is not None and (a.HasField(field) if field in _SINGULAR else len(getattr(a, field))):
        return a  # the usual case: the data is where the type says
    fields = data_fields(a)
    if len(fields) != 1:
        return a
    fixed = onnx.AttributeProto()
    fixed.CopyFrom(a)
    fixed.type = _TYPE_OF_FIELD[fields[0]]
    return fixed


def _elem_type(v: Value) -> int:
    return int(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(v.type.dtype)))


def check_declared(declared: Sequence[tuple[str, onnx.ValueInfoProto]],
                   env: Mapping[str, Value], maker: Callable[[str], str], rules: Rules) -> None:
    """Rule 6. `declared`: (what, value info) pairs; `maker(name)`: who makes the value, for
    the message ("node 'conv1' (Conv)", "initializer 'w')."""
    for what, vi in declared:
        v = env.get(vi.name)
        if v is None or not vi.type.HasField("tensor_type"):
            continue  # not imported (dropped, unsupported) or not a tensor
        tt = vi.type.tensor_type
        problems = []
        if tt.elem_type:
            got = _elem_type(v)
            # the IR holds float64 constants as float32 (Graph.add_constant)
            stored = tt.elem_type == onnx.TensorProto.DOUBLE and got == onnx.TensorProto.FLOAT \
                and v.is_constant
            if got != tt.elem_type and not stored:
                problems.append(f"dtype {onnx.TensorProto.DataType.Name(tt.elem_type)} "
                                f"(imported: {v.type.dtype})")
        if tt.HasField("shape"):
            dims = list(tt.shape.dim)
            shape = v.type.shape
            if len(dims) != len(shape):
                problems.append(f"rank {len(dims)} (imported: {list(shape)})")
            else:
                wrong = [i for i, (d, s) in enumerate(zip(dims, shape))
                         if d.HasField("dim_value") and d.dim_value != s]
                if wrong:
                    declared_dims = [d.dim_value if d.HasField("dim_value") else
                                     (d.dim_param or "?") for d in dims]
                    problems.append(f"shape {declared_dims} (imported: {list(shape)}, dim(s) "
                                    f"{', '.join(map(str, wrong))} differ)")
        if problems:
            rules.violation("declared-type", f"{what} {vi.name!r} made by {maker(vi.name)} is "
                            f"declared with {' and '.join(problems)}")
