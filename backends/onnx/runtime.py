"""The onnxruntime target: ONNX export + an InferenceSession made once at compile time.

CUDAExecutionProvider goes first whenever the installed onnxruntime (onnxruntime-gpu) reports it,
CPUExecutionProvider otherwise; `cm.providers` shows what the session really uses.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence

import numpy as np
import onnxruntime

from graphcnn.errors import CompileError
from graphcnn.ir import Graph
from graphcnn.runtime import CompiledModel

from .export import to_onnx


def default_providers() -> list[str]:
    available = onnxruntime.get_available_providers()
    preferred = [p for p in ("CUDAExecutionProvider",) if p in available]
    return preferred + ["CPUExecutionProvider"]


class OnnxRuntimeModel(CompiledModel):
    target = "onnxruntime"

    def __init__(self, graph: Graph, providers: Sequence[str] | None = None,
                 threads: int | None = None):
        super().__init__(graph)
        self.onnx_model = to_onnx(graph)
        self._threads = threads
        self._start_session(providers)

    def _start_session(self, providers: Sequence[str] | None) -> None:
        graph, threads = self.graph, self._threads
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                self.onnx_model.SerializeToString(), options,
                providers=list(providers or default_providers()))
        except Exception as e:  # onnxruntime raises its own exception types
            raise CompileError(f"onnxruntime rejected graph {graph.name!r}: {e}") from e
        self.providers = self.session.get_providers()
        self._onnx_outputs = [o.name for o in self.session.get_outputs()]

    def __getstate__(self) -> dict:
        """Everything but the session (not picklable), which unpickling makes again."""
        return {k: v for k, v in self.__dict__.items() if k != "session"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        available = onnxruntime.get_available_providers()
        self._start_session([p for p in self.providers if p in available])

    def _execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self._onnx_outputs, dict(zip(self.input_names, inputs)))

    def _profile(self, inputs: Sequence[np.ndarray], runs: int) -> list[dict]:
        """onnxruntime's own profiler (SessionOptions.enable_profiling) on a second session:
        one row per kernel it ran, named as onnxruntime names them after its graph
        optimisations (`conv_nchwc` for graphcnn's `conv`), the first (warm-up) call left out."""
        options = onnxruntime.SessionOptions()
        if self._threads:
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
        with tempfile.TemporaryDirectory() as tmp:
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(tmp, "ort")
            session = onnxruntime.InferenceSession(self.onnx_model.SerializeToString(), options,
                                                   providers=self.providers)
            feeds = dict(zip(self.input_names, inputs))
            for _ in range(runs + 1):
                session.run(self._onnx_outputs, feeds)
            with open(session.end_profiling(), encoding="utf-8") as f:
                events = json.load(f)
        calls: dict[str, list[dict]] = {}
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                calls.setdefault(e["name"][:-len("_kernel_time")], []).append(e)
        rows = []
        for name, seen in calls.items():
            timed = seen[1:] or seen
            rows.append({"node": name, "op": seen[0]["args"].get("op_name", "?"),
                         "seconds": sum(e["dur"] for e in timed) / len(timed) / 1e6,
                         "provider": seen[0]["args"].get("provider", "")})
        return rows


def compile(graph: Graph, providers: Sequence[str] | None = None, threads: int | None = None,
            **options) -> OnnxRuntimeModel:
    return OnnxRuntimeModel(graph, providers=providers, threads=threads)
