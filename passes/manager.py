"""The pass manager: runs named passes in order with debugging built in.

- verify after each pass (`verify=True`, the default; always on in tests);
- print the IR before / after a pass, by name or "all" (`print_before=`, `print_after=`: a name,
  a list of names, or "all"), to `stream` (stdout by default);
- dump the IR after each pass into a folder as `003_fuse-conv-activation.txt` (`dump_dir=`;
  `000_input.txt` is the graph before the first pass);
- per-pass wall-clock timings and changed flags on the returned `PassReport` (`timings=True`
  also prints the table to `stream`);
- a failing pass (an exception, or a graph the verifier rejects) raises `PassError` naming the
  pass and the passes that ran before it;
- progress: each pass is reported (graphcnn.progress, stage "passes") before it runs.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from graphcnn import progress
from graphcnn.budgets import check_time
from graphcnn.errors import GraphError, InvalidOptionError
from graphcnn.ir import Graph
from graphcnn.verify import verify as verify_graph

PassFn = Callable[[Graph], bool]


class PassError(GraphError):
    """A pass raised or left an invalid graph; names the pass and the passes before it."""

    def __init__(self, message: str, pass_name: str, previous: Sequence[str]):
        super().__init__(message)
        self.pass_name = pass_name
        self.previous = list(previous)


@dataclass(frozen=True)
class Pass:
    name: str
    fn: PassFn


@dataclass
class PassRecord:
    name: str
    changed: bool
    seconds: float
    nodes_before: int
    nodes_after: int


@dataclass
class PassReport:
    """What a pipeline run did: one record per pass run, in order."""

    records: list[PassRecord] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.records)

    def timings(self) -> dict[str, float]:
        """Seconds per pass name (summed when a pass runs more than once)."""
        out: dict[str, float] = {}
        for r in self.records:
            out[r.name] = out.get(r.name, 0.0) + r.seconds
        return out

    def format(self) -> str:
        lines = [f"{'pass':<28} {'changed':>7} {'nodes':>11} {'ms':>9}"]
        for r in self.records:
            lines.append(f"{r.name:<28} {'yes' if r.changed else 'no':>7} "
                         f"{r.nodes_before:>5}->{r.nodes_after:<5} {r.seconds * 1e3:>9.3f}")
        lines.append(f"{'total':<28} {'':>7} {'':>11} {self.total_seconds * 1e3:>9.3f}")
        return "\n".join(lines)


def _selected(which: str | Iterable[str] | None, name: str) -> bool:
    if which is None:
        return False
    if isinstance(which, str):
        return which == "all" or which == name
    return "all" in which or name in which


class PassManager:
    """Runs `passes` in order over a graph, in place."""

    def __init__(self, passes: Sequence[Pass], verify: bool = True,
                 print_before: str | Iterable[str] | None = None,
                 print_after: str | Iterable[str] | None = None,
                 dump_dir: str | os.PathLike | None = None, timings: bool = False,
                 stream: IO[str] | None = None):
        self.passes = list(passes)
        self.verify = verify
        known = [p.name for p in self.passes]
        for flag, which in (("print_before", print_before), ("print_after", print_after)):
            names = [which] if isinstance(which, str) else list(which or ())
            unknown = [n for n in names if n != "all" and n not in known]
            if unknown:  # a misspelt name would print nothing, silently
                raise InvalidOptionError(f"{flag}: no pass {', '.join(map(repr, unknown))} in "
                                         f"this pipeline; passes: all, {', '.join(known)}")
        self.print_before, self.print_after = print_before, print_after
        self.dump_dir = dump_dir
        self.timings = timings
        self.stream = stream

    def _print(self, when: str, name: str, graph: Graph) -> None:
        out = self.stream or sys.stdout
        print(f"// ----- IR {when} {name} -----", file=out)
        print(graph, file=out)

    def _dump(self, index: int, name: str, graph: Graph) -> None:
        os.makedirs(self.dump_dir, exist_ok=True)
        path = os.path.join(self.dump_dir, f"{index:03d}_{name}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(str(graph) + "\n")

    def run(self, graph: Graph) -> PassReport:
        report = PassReport()
        ran: list[str] = []
        if self.dump_dir is not None:
            self._dump(0, "input", graph)
        for index, p in enumerate(self.passes, start=1):
            check_time(f"pass {p.name!r}")
            progress.report("passes", index - 1, len(self.passes), p.name)
            if _selected(self.print_before, p.name):
                self._print("before", p.name, graph)
            n_before = len(graph.nodes)
            start = time.perf_counter()
            try:
                changed = bool(p.fn(graph))
            except Exception as e:
                raise self._error(p.name, ran, f"failed: {type(e).__name__}: {e}") from e
            seconds = time.perf_counter() - start
            if self.verify:
                try:
                    verify_graph(graph)
                except GraphError as e:
                    raise self._error(p.name, ran, f"left an invalid graph: {e}") from e
            ran.append(p.name)
            report.records.append(PassRecord(p.name, changed, seconds, n_before, len(graph.nodes)))
            if _selected(self.print_after, p.name):
                self._print("after", p.name, graph)
            if self.dump_dir is not None:
                self._dump(index, p.name, graph)
        progress.report("passes", len(self.passes), len(self.passes))
        if self.timings:
            print(report.format(), file=self.stream or sys.stderr)
        return report

    @staticmethod
    def _error(name: str, ran: list[str], what: str) -> PassError:
        previous = ", ".join(ran) if ran else "none"
        return PassError(f"pass {name!r} {what} (passes run before it: {previous})", name, ran)


def restore_output_names(graph: Graph, names: Sequence[str]) -> None:
    """Give the graph outputs back their original names (passes may replace output values).

    The value is renamed when it belongs to a node and has no other output role (an inner value
    holding the name is renamed first); otherwise (a graph input, a constant, or one value for two outputs) an identity
    node carries the name.
    """
    live: dict[str, Any] = {v.name: v for v in graph.values()}
    outs = list(graph.outputs)
    for i, (v, name) in enumerate(zip(outs, names)):
        if v.name == name:
            continue
        holder = live.get(name)
        if holder is not None:
            if any(holder is o for o in outs):
                continue  # the name belongs to another output: leave both
            del live[name]  # an inner value took the name (a rebuilt node): it gets another
            holder.name = graph.unique_name(name)
            live[holder.name] = holder
        shared = sum(o is v for o in outs) > 1
        if v.producer is not None and not shared and name not in live:
            del live[v.name]
            v.name = name
            live[name] = v
            continue
        node = graph.add_node("identity", [v], name=f"{name}.out")
        node.outputs[0].name = name
        live[name] = node.outputs[0]
        outs[i] = node.outputs[0]
    graph.set_outputs(outs)
