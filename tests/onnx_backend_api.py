"""graphcnn as an ONNX backend (`onnx.backend.base.Backend`), so ONNX's own test runner and
tools that speak the backend API can drive it; a test harness over from_onnx + gc.compile (it
sits above the front door, so it lives with the tests, not in the frontend):

    from onnx_backend_api import GraphcnnBackend  # tests/ on sys.path: tests/frontends/conftest.py
    rep = GraphcnnBackend.prepare(model, device="CPU", target="llvm")
    outputs = rep.run([x])                      # a tuple-like of numpy arrays, in output order

Options of `prepare` / `run_model`: `target` ("reference" by default, or "llvm"), `opt_level`,
`input_shapes` and the from_onnx size limits. Only the "CPU" device is supported.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

import graphcnn as gc
from graphcnn.errors import InputError
from graphcnn.frontends.onnx import from_onnx
from graphcnn.runtime import CompiledModel

TARGETS = ("reference", "llvm")
_IMPORT_OPTIONS = ("input_shapes", "max_tensor_bytes", "max_total_bytes", "base_dir", "name")


class GraphcnnRep(BackendRep):
    """A prepared model: the compiled graph plus the ONNX input/output names."""

    def __init__(self, compiled: CompiledModel):
        self.compiled = compiled
        names = [_identifier(n, i) for i, n in enumerate(compiled.output_names)]
        self._outputs = namedtuple("Outputs", names, rename=True)  # type: ignore[misc]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        names = self.compiled.input_names
        if isinstance(inputs, Mapping):
            results = self.compiled.run(dict(inputs))
            return self._outputs(*(results[n] for n in self.compiled.output_names))
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        inputs = list(inputs)
        if len(inputs) != len(names):
            raise InputError(f"the model takes {len(names)} input(s) {names}, got {len(inputs)}")
        out = self.compiled(*inputs)
        return self._outputs(*(out if isinstance(out, tuple) else (out,)))


class GraphcnnBackend(Backend):
    """ONNX backend API over from_onnx + gc.compile."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except Exception:  # noqa: BLE001  (onnx rejects unknown device strings variously)
            return False

    @classmethod
    def prepare(cls, model: onnx.ModelProto | str | bytes, device: str = "CPU",
                **kwargs: Any) -> GraphcnnRep:
        if not cls.supports_device(device):
            raise InputError(f"device {device!r} is not supported; graphcnn runs on 'CPU'")
        target = kwargs.pop("target", "reference")
        if target not in TARGETS:
            raise InputError(f"target {target!r} is not one of {TARGETS}")
        import_options = {k: kwargs.pop(k) for k in _IMPORT_OPTIONS if k in kwargs}
        graph = from_onnx(model, **import_options)
        compile_options = {k: v for k, v in kwargs.items() if k in ("opt_level",)}
        return GraphcnnRep(gc.compile(graph, target=target, **compile_options))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Sequence[tuple[Any, Any]] | None = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Run one node: wrapped in a one-node model whose inputs take the arrays' shapes."""
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        arrays = [np.asarray(x) for x in inputs]
        ins = [onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(x.dtype), list(x.shape))
            for name, x in zip(node.input, arrays) if name]
        outs = [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                for name in node.output if name]
        graph = onnx.helper.make_graph([node], "node", ins, outs)
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("",
                                                                                      opset)])
        return cls.run_model(model, [x for name, x in zip(node.input, arrays) if name], device,
                             **kwargs)


def _identifier(name: str, index: int) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"output_{index}"


prepare = GraphcnnBackend.prepare
run_model = GraphcnnBackend.run_model
run_node = GraphcnnBackend.run_node
supports_device = GraphcnnBackend.supports_device
