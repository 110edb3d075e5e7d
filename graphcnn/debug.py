"""`graphcnn debug`: where a target's answer leaves the reference's, by pass and by node.

    report = debug_model(graph, inputs, target="llvm", tol=1e-4)
    print(report.format())

Three steps, all against the reference interpreter on the unoptimised graph (the oracle):
1. the target's outputs: their relative L2 error;
2. passes: the graph after each prefix of the target's pass pipeline, run by the reference
   interpreter (which runs every op a pass may introduce, blocked layouts included); the first
   prefix whose outputs leave `tol` names the pass that changed what the graph computes. When
   no prefix does but the target still differs, the passes are not to blame: its kernels are;
3. nodes: every value of the user's graph tapped on the target (graphcnn/taps.py) and on the
   reference; the first node in topological order whose output leaves `tol` is printed with
   the stats of its inputs (shape, min / max / mean, relative L2 against the reference).
   The tapped build keeps every value, so no pass fuses across them: when the plain build
   diverges and the tapped one does not, the report says the fault lives in a fusion.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .ir import Graph, Node, Value
from .printer import format_node


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    """Relative L2 error; exact agreement is 0 also for all-zero arrays, NaNs count as inf."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    diff = float(np.linalg.norm(got - want))
    if not np.isfinite(diff):
        return 0.0 if np.array_equal(got, want, equal_nan=True) else float("inf")
    return diff / max(float(np.linalg.norm(want)), 1e-30) if diff else 0.0


@dataclass
class PassStep:
    index: int  # 1-based position in the pipeline
    name: str
    error: float | None  # max relative L2 of the outputs after this prefix; None: not run
    note: str = ""


@dataclass
class DebugReport:
    target: str
    tol: float
    output_error: float
    passes: list[PassStep] = field(default_factory=list)
    first_bad_pass: PassStep | None = None
    first_bad_node: Node | None = None
    node_error: float = 0.0
    input_stats: list[dict] = field(default_factory=list)
    tapped_output_error: float = 0.0  # the outputs of the build that keeps every value

    @property
    def agrees(self) -> bool:
        return self.output_error <= self.tol and self.first_bad_node is None

    def format(self) -> str:
        lines = [(f"target {self.target}: output rel L2 {self.output_error:.3e} "
                 f"(tolerance {self.tol:g}) -> {'agrees' if self.agrees else 'DIVERGES'}")]
        lines.append(f"passes ({len(self.passes)}), outputs after each prefix on the reference:")
        for step in self.passes:
            err = "not run" if step.error is None else f"{step.error:.3e}"
            mark = "  <- first out of tolerance" if step is self.first_bad_pass else ""
            lines.append(f"  {step.index:3d} {step.name:<28} {err}{mark}"
                         + (f"  ({step.note})" if step.note else ""))
        if self.first_bad_pass is not None:
            lines.append(f"first bad pass: {self.first_bad_pass.name} "
                         f"(#{self.first_bad_pass.index})")
        elif not self.agrees:
            lines.append("first bad pass: none (every prefix agrees on the reference: the "
                         f"{self.target} kernels differ)")
        if self.first_bad_node is not None:
            node = self.first_bad_node
            value = "" if node.outputs[0].name == node.name else f" -> %{node.outputs[0].name}"
            lines.append(f"first bad node: {node.name} ({node.op}){value}, output rel L2 "
                         f"{self.node_error:.3e}")
            lines.append(f"  {format_node(node)}")
            for s in self.input_stats:
                err = "constant" if s["rel_l2"] is None else f"rel L2 {s['rel_l2']:.3e}"
                lines.append(f"  input %{s['name']}: shape {list(s['shape'])} min {s['min']:.4g} "
                             f"max {s['max']:.4g} mean {s['mean']:.4g} {err}")
        elif not self.agrees:
            lines.append("first bad node: none (every tapped value agrees, and the build "
                         f"that keeps them all has output rel L2 {self.tapped_output_error:.3e}"
                         ": the fault is in a fusion across values, which that build cannot "
                         "do)")
        return "\n".join(lines)


def target_passes(target: str, opt_level: int | None) -> list:
    """The pass pipeline `gc.compile(graph, target, opt_level)` runs (graphcnn/api.py)."""
    from graphcnn.passes import pipeline

    from .opt_levels import DEFAULT_OPT_LEVEL

    if target == "reference":
        return pipeline(opt_level or 0, None)
    level = DEFAULT_OPT_LEVEL if opt_level is None else opt_level
    if target == "llvm":  # backends/llvm/target_pipeline.py: at least level 2, host block
        from graphcnn.backends.llvm.codegen import vector_width

        return pipeline(max(level, 2), "llvm", vector_width("host"))
    return pipeline(level, None)


def _bisect_passes(graph: Graph, inputs: Sequence[np.ndarray], want: list[np.ndarray],
                   passes: list, tol: float) -> list[PassStep]:
    from graphcnn.passes import PassManager, restore_output_names

    from .backends.reference import interpret
    from .errors import GraphcnnError

    work, names = graph.copy(), [v.name for v in graph.outputs]
    steps = []
    for index, p in enumerate(passes, start=1):
        PassManager([p]).run(work)
        snapshot = work.copy()
        restore_output_names(snapshot, names)
        try:
            outs = interpret(snapshot, inputs)
        except GraphcnnError as e:  # an op only the target runs: no verdict for this prefix
            steps.append(PassStep(index, p.name, None, f"reference cannot run it: {e}"[:120]))
            continue
        steps.append(PassStep(index, p.name, max(rel_l2(g, w) for g, w in zip(outs, want))))
    return steps


def _stats(v: Value, got: np.ndarray, want: np.ndarray | None) -> dict:
    a = np.asarray(got, np.float64)
    return {"name": v.name, "shape": tuple(a.shape), "min": float(a.min()) if a.size else 0.0,
            "max": float(a.max()) if a.size else 0.0, "mean": float(a.mean()) if a.size else 0.0,
            "rel_l2": None if want is None else rel_l2(got, want)}


def debug_model(graph: Graph, inputs: Sequence[np.ndarray], target: str = "llvm",
                tol: float = 1e-4, opt_level: int | None = None) -> DebugReport:
    """Compare `target` with the reference on `inputs`: outputs, pass prefixes, nodes."""
    from . import compile

    feeds = dict(zip([v.name for v in graph.inputs], inputs))
    reference = compile(graph, target="reference")
    names = reference.tensor_names()
    want = reference.run(feeds, taps=names)
    cm = compile(graph, target=target, opt_level=opt_level)
    got_outputs = cm.run(feeds)
    output_error = max(rel_l2(got_outputs[n], want[n]) for n in cm.output_names)
    report = DebugReport(target, tol, output_error)

    report.passes = _bisect_passes(graph, inputs, [want[n] for n in reference.output_names],
                                   target_passes(target, opt_level), tol)
    report.first_bad_pass = next((s for s in report.passes
                                  if s.error is not None and s.error > tol), None)

    got = cm.run(feeds, taps=names)
    report.tapped_output_error = max(rel_l2(got[n], want[n]) for n in cm.output_names)
    known = {**feeds, **got}
    for node in graph.nodes:
        err = max(rel_l2(got[v.name], want[v.name]) for v in node.outputs)
        if err > tol:
            report.first_bad_node, report.node_error = node, err
            report.input_stats = [
                _stats(v, v.data, None) if v.is_constant
                else _stats(v, known[v.name], want.get(v.name, feeds.get(v.name)))
                for v in node.inputs]
            break
    return report
