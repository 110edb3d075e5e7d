"""A picture of a graph as SVG, with no graphviz needed: nodes in layers by depth, edges as lines.

Each node's layer is one more than its deepest producer, so data flows top to bottom; nodes in
one layer are spread left to right in graph order.
"""
from __future__ import annotations

from html import escape

from .ir import Graph

BOX_W, BOX_H, GAP_X, GAP_Y = 190, 44, 24, 36


def layout(graph: Graph) -> dict[str, tuple[int, int]]:
    """Node or input name -> (layer, slot)."""
    depth: dict[int, int] = {id(v): 0 for v in graph.inputs}
    place: dict[str, tuple[int, int]] = {}
    slots: dict[int, int] = {}
    for v in graph.inputs:
        place[f"in:{v.name}"] = (0, slots.setdefault(0, 0))
        slots[0] += 1
    for node in graph.nodes:
        layer = 1 + max((depth.get(id(v), 0) for v in node.inputs if not v.is_constant), default=0)
        for out in node.outputs:
            depth[id(out)] = layer
        place[node.name] = (layer, slots.get(layer, 0))
        slots[layer] = slots.get(layer, 0) + 1
    return place


def to_svg(graph: Graph) -> str:
    place = layout(graph)
    center = {k: (GAP_X + s * (BOX_W + GAP_X) + BOX_W // 2, GAP_Y + l * (BOX_H + GAP_Y) + BOX_H // 2)
              for k, (l, s) in place.items()}
    width = max(x for x, _ in center.values()) + BOX_W // 2 + GAP_X
    height = max(y for _, y in center.values()) + BOX_H // 2 + GAP_Y
    source = {id(v): f"in:{v.name}" for v in graph.inputs}
    for node in graph.nodes:
        for out in node.outputs:
            source[id(out)] = node.name
    header = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              'font-family="monospace" font-size="11">')
    parts = [header]
    for node in graph.nodes:
        x2, y2 = center[node.name]
        for v in node.inputs:
            if id(v) in source:
                x1, y1 = center[source[id(v)]]
                parts.append(f'<line x1="{x1}" y1="{y1 + BOX_H // 2}" x2="{x2}" y2="{y2 - BOX_H // 2}" '
                             'stroke="#555"/>')
    labels = {f"in:{v.name}": (f"input {v.name}", str(v.type), "#dde8f7") for v in graph.inputs}
    for node in graph.nodes:
        labels[node.name] = (f"{node.op} {node.name}", ", ".join(str(o.type) for o in node.outputs),
                             "#f4f4f4")
    for key, (title, subtitle, fill) in labels.items():
        x, y = center[key]
        parts.append(f'<rect x="{x - BOX_W // 2}" y="{y - BOX_H // 2}" width="{BOX_W}" '
                     f'height="{BOX_H}" rx="6" fill="{fill}" stroke="#333"/>')
        parts.append(f'<text x="{x}" y="{y - 4}" text-anchor="middle">{escape(title[:28])}</text>')
        parts.append(f'<text x="{x}" y="{y + 12}" text-anchor="middle" fill="#555">'
                     f'{escape(subtitle[:30])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_svg(graph: Graph, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_svg(graph))
