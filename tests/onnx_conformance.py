"""ONNX's own conformance material, as cases graphcnn can run: the node test cases
(`onnx.backend.test.case.node.collect_testcases()`), the model folders shipped in the onnx
wheel (`onnx/backend/test/data/pytorch-*`: model.onnx + test_data_set_*/{input,output}_*.pb), and
the "light" real models of `onnx.backend.test.case.model` (model-zoo networks at 224x224 whose
weights are ConstantOfShape fills; input arange(n)/n as onnx's runner makes it, expected output
beside the file).

A case is *selected* when every node's op type is in the import table and every graph input and
output is float32, or int64/int32/bool where every op of the case is one of NON_FLOAT_OPS (the
ops graphcnn runs on those dtypes). Used by tests/frontends/test_onnx_conformance.py
and tools/gen_onnx_support.py (both put tests/ on sys.path, so they share one RESULTS).
"""
from __future__ import annotations

import functools
import glob
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

import graphcnn as gc
from graphcnn.frontends.onnx import DEFAULT_DOMAINS, IMPORTERS, from_onnx

MODEL_FOLDERS = ("pytorch-converted", "pytorch-operator")
MODEL_RTOL, MODEL_ATOL = 1e-3, 1e-7  # onnx's BackendTest defaults for model folders


@dataclass
class Case:
    name: str
    source: str  # "node" or the model folder family
    model: onnx.ModelProto
    model_path: str | None  # folders: imported from the file (exercises path loading)
    data_sets: list[tuple[list[np.ndarray], list[np.ndarray]]]
    rtol: float
    atol: float

    @property
    def op_types(self) -> set[str]:
        return {n.op_type for n in self.model.graph.node}


@functools.lru_cache(maxsize=1)
def node_cases() -> tuple[Case, ...]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    return tuple(Case(c.name, "node", c.model, None, [(list(i), list(o)) for i, o in c.data_sets],
                      c.rtol, c.atol) for c in cases if c.model is not None)


@functools.lru_cache(maxsize=1)
def model_folder_cases() -> tuple[Case, ...]:
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    out = []
    for family in MODEL_FOLDERS:
        for path in sorted(glob.glob(os.path.join(root, family, "*", "model.onnx"))):
            folder = os.path.dirname(path)
            data_sets = []
            for ds in sorted(glob.glob(os.path.join(folder, "test_data_set_*"))):
                def read(kind: str, ds: str = ds) -> list[np.ndarray]:
                    files = sorted(glob.glob(os.path.join(ds, f"{kind}_*.pb")),
                                   key=lambda f: int(f.rsplit("_", 1)[1].split(".")[0]))
                    return [numpy_helper.to_array(onnx.load_tensor(f)) for f in files]
                data_sets.append((read("input"), read("output")))
            out.append(Case(os.path.basename(folder), family, onnx.load(path), path, data_sets,
                            MODEL_RTOL, MODEL_ATOL))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def light_model_cases() -> tuple[Case, ...]:
    from onnx.backend.test.case.model import collect_testcases

    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    out = []
    for c in collect_testcases():
        path = os.path.join(root, f"light_{c.model_name}.onnx")
        if c.kind != "real" or not os.path.exists(path):
            continue
        model = onnx.load(path)
        inits = {t.name for t in model.graph.initializer}
        inputs = []
        for vi in model.graph.input:
            if vi.name not in inits:
                shape = tuple(d.dim_value or 1 for d in vi.type.tensor_type.shape.dim)
                n = int(np.prod(shape))
                inputs.append((np.arange(n).reshape(shape) / n).astype(np.float32))
        outputs = [numpy_helper.to_array(onnx.load_tensor(f"{path[:-5]}_output_{i}.pb"))
                   for i in range(len(model.graph.output))]
        out.append(Case(c.name, "light", model, path, [(inputs, outputs)], c.rtol, c.atol))
    return tuple(out)


def all_cases() -> tuple[Case, ...]:
    return node_cases() + model_folder_cases() + light_model_cases()


# ONNX ops whose graphcnn op takes int64/int32/bool data (graphcnn/ops/indexing.py), the
# shape ops that go with them, and the integer arithmetic with a native kernel
NON_FLOAT_OPS = frozenset({"ArgMax", "ArgMin", "Gather", "Cast", "Where", "Split", "Slice",
                           "Expand", "Tile", "Identity", "Constant", "Shape",
                           "Add", "Sub", "Mul", "Sum", "Max", "Min"})
_T = onnx.TensorProto
NON_FLOAT_TYPES = frozenset({_T.INT64, _T.INT32, _T.BOOL})


def in_op_set(case: Case) -> bool:
    """Every node an op of the import table, every graph input/output float32, or of
    NON_FLOAT_TYPES in a case whose ops are all NON_FLOAT_OPS."""
    g = case.model.graph
    if not all(n.domain in DEFAULT_DOMAINS and n.op_type in IMPORTERS for n in g.node):
        return False
    inits = {t.name for t in g.initializer}
    ios = [v for v in g.input if v.name not in inits] + list(g.output)
    types = {v.type.tensor_type.elem_type for v in ios}
    if types <= {_T.FLOAT}:
        return True
    return types <= {_T.FLOAT} | NON_FLOAT_TYPES and \
        all(n.op_type in NON_FLOAT_OPS for n in g.node)


def selected_cases() -> list[Case]:
    return [c for c in all_cases() if in_op_set(c)]


# (source, case name, target) -> passed, for every run_case without options in this process:
# the doc generator reuses what the conformance test measured in the same pytest session
RESULTS: dict[tuple[str, str, str], bool] = {}


def run_case(case: Case, target: str, **compile_options: Any) -> None:
    """Import, compile for `target` and compare every data set at the case's tolerance
    (AssertionError on a mismatch; graphcnn errors propagate)."""
    key = (case.source, case.name, target)
    RESULTS.pop(key, None)
    try:
        _run_case(case, target, **compile_options)
    except BaseException:
        if not compile_options:
            RESULTS[key] = False
        raise
    if not compile_options:
        RESULTS[key] = True


def _run_case(case: Case, target: str, **compile_options: Any) -> None:
    graph = from_onnx(case.model_path or case.model)
    compiled = gc.compile(graph, target=target, **compile_options)
    for inputs, expected in case.data_sets:
        got = compiled(*inputs)
        got = list(got) if isinstance(got, tuple) else [got]
        assert len(got) == len(expected), f"{case.name}: {len(got)} outputs, want {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert g.shape == e.shape, f"{case.name} output {i}: shape {g.shape} != {e.shape}"
            np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol,
                                       err_msg=f"{case.name} output {i} on {target}")
