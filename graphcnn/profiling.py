"""Per-layer profiles, the same shape on every target, and their Chrome trace form.

    prof = cm.profile(x, runs=10)     # a Profile: one row per layer, in execution order
    prof[0]                           # {"node": "conv_1", "op": "conv", "seconds": 1.2e-4, ...}
    prof.write_trace("trace.json")    # open in Perfetto (ui.perfetto.dev) or chrome://tracing

A row is a dict (so it prints, sorts and serialises as JSON as it is) with at least "node",
"op" and "seconds" (mean wall time per call); targets add what they know ("flops", "tasks" on
llvm). In the trace the layers are laid end to end in execution order, one "X" (complete)
event each: ts and dur in microseconds, name the node, cat the op.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable


class Profile(list):
    """A list of per-layer rows ({"node", "op", "seconds", ...}) for one target."""

    def __init__(self, rows: Iterable[dict] = (), target: str = "?"):
        super().__init__(rows)
        self.target = target

    @property
    def total_seconds(self) -> float:
        return sum(r["seconds"] for r in self)

    def to_chrome_trace(self) -> dict:
        """The Trace Event Format object: {"traceEvents": [...], "displayTimeUnit": "ms"}."""
        events, ts = [], 0.0
        for row in self:
            dur = row["seconds"] * 1e6
            args = {k: v for k, v in row.items() if k not in ("node", "op", "seconds")}
            events.append({"name": row["node"], "cat": row["op"], "ph": "X", "ts": ts,
                           "dur": dur, "pid": 1, "tid": 1, "args": args})
            ts += dur
        meta = {"name": "process_name", "ph": "M", "pid": 1, "tid": 1,
                "args": {"name": f"graphcnn {self.target}"}}
        return {"traceEvents": [meta] + events, "displayTimeUnit": "ms"}

    def write_trace(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_chrome_trace(), f)

    def format(self, top: int = 25) -> str:
        return format_profile(self, top=top)


def format_profile(profile: list[dict], top: int = 25) -> str:
    """Per-layer rows: node, op, time, GFLOP/s, share of the total."""
    total = sum(p["seconds"] for p in profile) or 1e-30
    lines = [f"{'node':<28} {'op':<14} {'ms':>9} {'GFLOP/s':>8} {'share':>6}"]
    for p in sorted(profile, key=lambda p: -p["seconds"])[:top]:
        gf = p.get("flops", 0) / p["seconds"] / 1e9 if p["seconds"] > 0 else 0.0
        lines.append(f"{p['node'][:28]:<28} {p['op'][:14]:<14} {p['seconds'] * 1e3:>9.3f} "
                     f"{gf:>8.1f} {100 * p['seconds'] / total:>5.1f}%")
    return "\n".join(lines)
