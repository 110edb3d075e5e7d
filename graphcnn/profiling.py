"""Per-layer profiles, the same shape on every target, and their Chrome trace form.

    prof = cm.profile(x, runs=10)     # a Profile: one row per layer, in execution order
    prof[0]                           # {"node": "conv_1", "op": "conv", "seconds": 1.2e-4, ...}
    prof.write_trace("trace.json")    # open in Perfetto (ui.perfetto.dev) or chrome://tracing
    prof.write_chart("layers.svg")    # per-layer bar chart, the slowest first

A row is a dict (so it prints, sorts and serialises as JSON as it is) with at least "node",
"op" and "seconds" (mean wall time per call); targets add what they know ("flops", "tasks" on
llvm). In the trace the layers are laid end to end in execution order, one "X" (complete)
event each: ts and dur in microseconds, name the node, cat the op.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from xml.sax.saxutils import escape


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

    def to_svg(self, top: int = 40) -> str:
        """A per-layer bar chart as SVG text: the `top` slowest layers, slowest first, each bar
        labelled with its node, op, milliseconds and share; one colour per op type. Plain SVG,
        so it needs no plotting library and opens in any browser."""
        rows = sorted(self, key=lambda r: -r["seconds"])[:top]
        total = self.total_seconds or 1e-30
        longest = max((r["seconds"] for r in rows), default=0.0) or 1e-30
        ops = sorted({r["op"] for r in rows})
        palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                   "#ff9da7", "#9c755f", "#bab0ac"]
        colour = {op: palette[i % len(palette)] for i, op in enumerate(ops)}
        label_w, bar_w, row_h, top_h = 330, 420, 18, 34
        width, height = label_w + bar_w + 150, top_h + row_h * len(rows) + 10
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'font-family="monospace" font-size="11">')
        title = escape(f"graphcnn {self.target}: {len(self)} layers, {total * 1e3:.3f} ms per "
                       f"call (the {len(rows)} slowest shown)")
        out = [head, f'<text x="6" y="16" font-size="13">{title}</text>']
        for i, r in enumerate(rows):
            y = top_h + i * row_h
            w = max(1.0, bar_w * r["seconds"] / longest)
            name = escape(f'{r["node"][:32]} ({r["op"][:12]})')
            figure = f'{r["seconds"] * 1e3:.3f} ms {100 * r["seconds"] / total:.1f}%'
            bar = (f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" '
                   f'fill="{colour[r["op"]]}"><title>{escape(r["node"])}</title></rect>')
            out += [f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{name}</text>', bar,
                    f'<text x="{label_w + w + 6:.1f}" y="{y + 12}">{figure}</text>']
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def write_chart(self, path: str | os.PathLike, top: int = 40) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_svg(top=top))


def format_profile(profile: list[dict], top: int = 25) -> str:
    """Per-layer rows: node, op, time, GFLOP/s, share of the total."""
    total = sum(p["seconds"] for p in profile) or 1e-30
    lines = [f"{'node':<28} {'op':<14} {'ms':>9} {'GFLOP/s':>8} {'share':>6}"]
    for p in sorted(profile, key=lambda p: -p["seconds"])[:top]:
        gf = p.get("flops", 0) / p["seconds"] / 1e9 if p["seconds"] > 0 else 0.0
        lines.append(f"{p['node'][:28]:<28} {p['op'][:14]:<14} {p['seconds'] * 1e3:>9.3f} "
                     f"{gf:>8.1f} {100 * p['seconds'] / total:>5.1f}%")
    return "\n".join(lines)
