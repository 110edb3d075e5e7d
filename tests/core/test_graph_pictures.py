"""graphcnn/svg.py and graphcnn/dot.py: edges, fused groups and the text IR's names, in SVG and
Graphviz source; `graphcnn show --svg/--dot` writes both."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from debug_models import conv_bn_relu

import graphcnn as gc
from graphcnn.cli import main
from graphcnn.dot import to_dot
from graphcnn.svg import fused_parts, node_title, to_svg

SVG = "{http://www.w3.org/2000/svg}"


def fused_graph() -> gc.Graph:
    return gc.optimize(conv_bn_relu(), opt_level=2)  # bn folded, relu fused into each conv


def dataflow_edges(graph: gc.Graph) -> int:
    return sum(1 for n in graph.nodes for v in n.inputs if not v.is_constant)


def test_fused_parts_and_titles_follow_the_attrs():
    graph = fused_graph()
    convs = [n for n in graph.nodes if n.op == "conv"]
    assert [fused_parts(n) for n in convs] == [["relu"], ["relu"]]
    assert node_title(convs[0]) == "%conv = conv+relu"
    assert fused_parts(next(n for n in graph.nodes if n.op == "max_pool")) == []


def test_svg_draws_nodes_edges_and_fused_groups():
    graph = fused_graph()
    root = ET.fromstring(to_svg(graph))  # well-formed XML
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == len(graph.inputs) + len(graph.nodes)
    lines = root.findall(f"{SVG}line")
    assert len(lines) == dataflow_edges(graph)
    assert all(line.get("marker-end") == "url(#arrow)" for line in lines)
    groups = root.findall(f"{SVG}g[@class='fused']")
    assert len(groups) == 2 and all(g.find(f"{SVG}title").text == "fused: relu" for g in groups)
    texts = [t.text for t in root.findall(f"{SVG}text")]
    assert "%conv = conv+relu" in texts and "%max_pool = max_pool" in texts
    assert sum(r.get("stroke-width") == "3" for r in rects) == 1  # the one graph output


def test_dot_has_clusters_for_fused_nodes_and_labelled_edges():
    graph = fused_graph()
    text = to_dot(graph)
    assert text.startswith('digraph "model" {') and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")
    assert len(re.findall(r"subgraph cluster_\d+", text)) == 2
    assert text.count('label="fused: conv + relu"') == 2
    edges = re.findall(r"^  (\w+) -> (\w+) \[label=\"%([^\"]+)\"\];$", text, re.MULTILINE)
    assert len(edges) == dataflow_edges(graph)
    assert ("n0", "n1", "conv") in edges  # conv -> max_pool, labelled with the value
    assert '"%conv = conv+relu\\nf32[1,8,16,16]"' in text
    assert "weight" not in text  # constants are not dataflow


def test_show_writes_svg_and_dot(tmp_path, capsys):
    svg, dot = tmp_path / "g.svg", tmp_path / "g.dot"
    model = tmp_path / "m.onnx"
    gc.export_onnx(conv_bn_relu(), model)
    assert main(["show", str(model), "--opt", "2", "--svg", str(svg), "--dot", str(dot)]) == 0
    err = capsys.readouterr().err
    assert f"wrote {svg}" in err and f"wrote {dot}" in err
    assert "fused: conv + relu" in dot.read_text() and 'class="fused"' in svg.read_text()
