"""A picture of a graph as SVG, with no graphviz needed: nodes in layers by depth, edges as
arrows, labelled with the text IR's names (`%conv = conv+relu`).

Each node's layer is one more than its deepest producer, so data flows top to bottom; nodes in
one layer are spread left to right in graph order. A node that carries fused work (an epilogue
activation, a residual add, a max pool: `fused_parts`) is drawn as a group: a tinted box inside
a dashed outline listing what it fused. Graph outputs have a thick border. graphcnn/dot.py
writes the same picture as Graphviz source.
"""
from __future__ import annotations

from html import escape

from .ir import Graph, Node

BOX_W, BOX_H, GAP_X, GAP_Y = 210, 44, 28, 44
PAD = 6  # the fused group's outline around its box
PLAIN, FUSED, INPUT = "#f4f4f4", "#fde9c9", "#dde8f7"


def fused_parts(node: Node) -> list[str]:
    """The ops a node computes after its own, as the fusion passes recorded them in attrs."""
    parts = []
    if node.attrs.get("pool"):
        parts.append("max_pool")
    if node.attrs.get("residual"):
        parts.append("add")
    activation = node.attrs.get("activation", "none")
    if activation not in ("none", None):
        parts.append(str(activation))
    return parts


def node_title(node: Node) -> str:
    """`%out = op+fused` with the text IR printer's value names."""
    outs = ", ".join(f"%{v.name}" for v in node.outputs)
    return f"{outs} = {'+'.join([node.op, *fused_parts(node)])}"


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
    arrow = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
             'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
             '</marker></defs>')
    parts = [header, arrow]
    for node in graph.nodes:
        x2, y2 = center[node.name]
        y2 -= PAD if fused_parts(node) else 0  # arrows end on the group's outline
        for v in node.inputs:
            if id(v) in source:
                x1, y1 = center[source[id(v)]]
                parts.append(f'<line x1="{x1}" y1="{y1 + BOX_H // 2}" x2="{x2}" '
                             f'y2="{y2 - BOX_H // 2}" stroke="#555" '
                             f'marker-end="url(#arrow)"><title>%{escape(v.name)}: '
                             f'{escape(str(v.type))}</title></line>')
    outputs = {id(v) for v in graph.outputs}
    labels = {f"in:{v.name}": (f"%{v.name} (input)", str(v.type), INPUT, [], id(v) in outputs)
              for v in graph.inputs}
    for node in graph.nodes:
        fused = fused_parts(node)
        labels[node.name] = (node_title(node), ", ".join(str(o.type) for o in node.outputs),
                             FUSED if fused else PLAIN, fused,
                             any(id(o) in outputs for o in node.outputs))
    for key, (title, subtitle, fill, fused, is_output) in labels.items():
        x, y = center[key]
        if fused:  # the group: a dashed outline naming the ops fused into the node
            parts.append(f'<g class="fused"><title>fused: {escape(" + ".join(fused))}</title>'
                         f'<polygon points="{_outline(x, y)}" fill="none" stroke="#c07000" '
                         'stroke-dasharray="4 3"/></g>')
        parts.append(f'<rect x="{x - BOX_W // 2}" y="{y - BOX_H // 2}" width="{BOX_W}" '
                     f'height="{BOX_H}" rx="6" fill="{fill}" stroke="#333" '
                     f'stroke-width="{3 if is_output else 1}"/>')
        parts.append(f'<text x="{x}" y="{y - 4}" text-anchor="middle">{escape(title[:32])}</text>')
        parts.append(f'<text x="{x}" y="{y + 12}" text-anchor="middle" fill="#555">'
                     f'{escape(subtitle[:32])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _outline(x: int, y: int) -> str:
    """The corners of the box grown by PAD (a polygon, so node boxes stay the only rects)."""
    x0, x1 = x - BOX_W // 2 - PAD, x + BOX_W // 2 + PAD
    y0, y1 = y - BOX_H // 2 - PAD, y + BOX_H // 2 + PAD
    return f"{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}"


def write_svg(graph: Graph, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_svg(graph))
