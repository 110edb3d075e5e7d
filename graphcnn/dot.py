"""The graph as Graphviz source (`graphcnn show --dot g.dot`, then `dot -Tsvg g.dot`): the same
picture as graphcnn/svg.py, laid out by Graphviz. Nodes carry the text IR's names and types;
a node with fused work sits in a dashed cluster naming what it fused; edges are labelled with
the value they carry; constants are left out (they are weights, not dataflow)."""
from __future__ import annotations

from .ir import Graph
from .svg import FUSED, INPUT, PLAIN, fused_parts, node_title


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def to_dot(graph: Graph) -> str:
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10];',
             '  edge [fontname="monospace", fontsize=9, color="#555555"];']
    outputs = {id(v) for v in graph.outputs}
    source: dict[int, str] = {}
    for i, v in enumerate(graph.inputs):
        source[id(v)] = f"in{i}"
        label = _quote(f"%{v.name} (input)\n{v.type}")
        lines.append(f'  in{i} [label={label}, fillcolor="{INPUT}"];')
    for i, node in enumerate(graph.nodes):
        key = f"n{i}"
        for out in node.outputs:
            source[id(out)] = key
        label = node_title(node) + "\n" + ", ".join(str(o.type) for o in node.outputs)
        border = ", penwidth=3" if any(id(o) in outputs for o in node.outputs) else ""
        fused = fused_parts(node)
        box = (f"{key} [label={_quote(label)}, fillcolor=\"{FUSED if fused else PLAIN}\""
               f"{border}];")
        if fused:
            lines += [f"  subgraph cluster_{i} {{",
                      f"    label={_quote('fused: ' + ' + '.join([node.op, *fused]))};",
                      '    style=dashed; color="#c07000"; fontname="monospace"; fontsize=9;',
                      f"    {box}", "  }"]
        else:
            lines.append(f"  {box}")
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            if id(v) in source:
                lines.append(f"  {source[id(v)]} -> n{i} [label={_quote('%' + v.name)}];")
    lines.append("}")
    return "\n".join(lines)


def write_dot(graph: Graph, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_dot(graph) + "\n")
