"""The one textual form of the IR: deterministic, one line per node, diff friendly.

    graph lenet(%input: f32[1,1,28,28]) {
      const %conv.weight: f32[6,1,5,5]
      %conv = conv(%input, %conv.weight, %conv.bias) {groups=1, pads=[2,2,2,2]} : f32[1,6,28,28]  # 1 use
      return %softmax
    }
"""
from __future__ import annotations

from typing import Any


def format_attr(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(format_attr(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def format_node(node) -> str:
    outs = ", ".join(f"%{v.name}" for v in node.outputs)
    args = ", ".join(f"%{v.name}" for v in node.inputs)
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in sorted(node.attrs.items()))
    types = ", ".join(str(v.type) for v in node.outputs)
    uses = sum(len(v.uses) for v in node.outputs)
    line = f"{outs} = {node.op}({args})"
    if attrs:
        line += f" {{{attrs}}}"
    return f"{line} : {types}  # {uses} use{'s' if uses != 1 else ''}"


def format_graph(graph) -> str:
    ins = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    lines = [f"graph {graph.name}({ins}) {{"]
    lines += [f"  const %{v.name}: {v.type}" for v in graph.constants]
    lines += [f"  {format_node(n)}" for n in graph.nodes]
    lines.append("  return " + ", ".join(f"%{v.name}" for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines)
