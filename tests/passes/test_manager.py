from __future__ import annotations

import io

import pytest
from graphcnn.passes import (
    LLVM_PASSES_PER_LEVEL,
    PASSES_PER_LEVEL,
    Pass,
    PassError,
    PassManager,
    last_report,
    optimize,
    pass_names,
)
from pass_cases import NETWORKS, ops

import graphcnn as gc
from graphcnn.errors import InvalidOptionError
from graphcnn.ir import Graph


def _graph() -> Graph:
    g = Graph("t")
    x = g.add_input("x", (2, 3))
    g.set_outputs([g.apply("relu", [g.apply("identity", [x])], name="out")])
    return g


def _broken(graph: Graph) -> bool:  # leaves a node whose recorded type is wrong
    from graphcnn.ir import TensorType

    graph.nodes[0].outputs[0].type = TensorType((9, 9))
    return True


def _raises(graph: Graph) -> bool:
    raise RuntimeError("boom")


def test_print_after_by_name_and_all():
    s = io.StringIO()
    optimize(_graph(), 1, print_after="remove-identity", stream=s)
    text = s.getvalue()
    assert text.count("// ----- IR after") == 1 and "identity(" not in text
    s = io.StringIO()
    optimize(_graph(), 1, print_after="all", print_before=["dce"], stream=s)
    assert s.getvalue().count("// ----- IR after") == len(PASSES_PER_LEVEL[1])
    assert s.getvalue().count("// ----- IR before dce") == 1


@pytest.mark.parametrize("key,value", [("print_after", "remove-identiy"),
                                       ("print_before", ["dce", "nope"])])
def test_unknown_pass_names_to_print_are_an_error(key, value):
    with pytest.raises(InvalidOptionError, match=rf"{key}: no pass .*passes: all, "):
        optimize(_graph(), 1, **{key: value})


def test_dumps_numbered(tmp_path):
    optimize(_graph(), 2, dump_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "000_input.txt" and names[1] == "001_remove-identity.txt"
    assert len(names) == len(PASSES_PER_LEVEL[2]) + 1
    assert "fuse-conv-activation" in " ".join(names)
    assert (tmp_path / "000_input.txt").read_text().startswith("graph t(")


def test_timings_on_report_and_printed():
    s = io.StringIO()
    g = optimize(_graph(), 2, timings=True, stream=s)
    report = last_report(g)
    assert [r.name for r in report.records] == PASSES_PER_LEVEL[2]
    assert all(r.seconds >= 0 for r in report.records) and report.total_seconds >= 0
    assert set(report.timings()) == set(PASSES_PER_LEVEL[2])
    assert "remove-identity" in s.getvalue() and "total" in s.getvalue()
    assert report.records[0].changed and report.records[0].nodes_after == 1


def test_failing_pass_names_itself_and_the_passes_before():
    passes = [Pass("first", lambda g: False), Pass("second", lambda g: False),
              Pass("explode", _raises)]
    with pytest.raises(PassError, match=r"'explode' failed: RuntimeError: boom \(passes run "
                                        r"before it: first, second\)") as info:
        PassManager(passes).run(_graph())
    assert info.value.pass_name == "explode" and info.value.previous == ["first", "second"]
    assert isinstance(info.value, gc.GraphcnnError)


def test_verify_after_each_pass_catches_a_bad_pass():
    with pytest.raises(PassError, match="'breaks' left an invalid graph.*before it: none"):
        PassManager([Pass("breaks", _broken)]).run(_graph())
    PassManager([Pass("breaks", _broken)], verify=False).run(_graph())  # off: no check


def test_levels_targets_and_output_names():
    assert PASSES_PER_LEVEL[0] == [] and "choose-layout" not in PASSES_PER_LEVEL[3]
    assert "choose-layout" in LLVM_PASSES_PER_LEVEL[2]
    assert "choose-layout" not in LLVM_PASSES_PER_LEVEL[1]
    assert pass_names(2, "onnxruntime") == PASSES_PER_LEVEL[2]
    with pytest.raises(ValueError, match="opt_level"):
        optimize(_graph(), 7)
    g = optimize(_graph(), 2)
    assert ops(g) == ["relu"] and g.outputs[0].name == "out"


def test_output_names_kept_when_an_output_is_fused_away():
    g = NETWORKS["resnet_block"]()
    name = g.outputs[0].name
    out = optimize(g, 2, "llvm")
    assert out.outputs[0].name == name and "batch_norm" not in ops(out)


def test_output_name_of_a_graph_input_passthrough():
    g = Graph("t")
    x = g.add_input("x", (2,))
    g.set_outputs([g.apply("identity", [x], name="y"), g.apply("relu", [x], name="z")])
    out = optimize(g, 2)
    assert [v.name for v in out.outputs] == ["y", "z"]
    assert ops(out) == ["relu", "identity"]  # the identity now carries the output name


def test_gc_optimize_does_not_mutate():
    g = NETWORKS["lenet5"]()
    text = str(g)
    gc.optimize(g, opt_level=3)
    assert str(g) == text
