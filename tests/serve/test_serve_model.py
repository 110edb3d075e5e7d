"""ServedModel without HTTP: the batch sizes it compiles, padding and splitting against the
reference, each kind of model file (DSL, ONNX, saved .gcm), and graphs that cannot be re-batched."""
from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import rel_err, samples

import graphcnn as gc
from graphcnn.errors import InputError, ModelLoadError
from graphcnn.models import lenet5
from graphcnn.serve import ServedModel, batch_sizes


def test_batch_sizes_are_powers_of_two_and_the_maximum():
    assert batch_sizes(1) == (1,)
    assert batch_sizes(4) == (1, 2, 4)
    assert batch_sizes(24) == (1, 2, 4, 8, 16, 24)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(InputError, match="max_batch"):
            batch_sizes(bad)


def test_requests_pad_to_a_compiled_size_and_split_back(lenet, reference):
    xs = [samples(k, 30 + k) for k in (1, 2)]  # 3 samples: one call at batch 4
    assert lenet.size_for(3) == 4 and lenet.size_for(1) == 1
    outs = lenet.run([{"input": x} for x in xs])
    for x, out in zip(xs, outs):
        assert out["softmax"].shape == (len(x), 10)
        assert rel_err(out["softmax"], reference(x)) < 1e-5


def test_sample_checks_name_the_input(lenet):
    x = samples(1, 0)
    assert lenet.samples({"input": samples(3, 0)}) == 3
    for feeds, words in [
        ({"image": x}, r"unknown input\(s\) \['image'\], missing \['input'\]"),
        ({"input": x.astype(np.float64)}, "datatype float64 but the model takes float32"),
        ({"input": x[:, :, :27]}, r"shape \[1, 1, 27, 28\] but the model takes \[N, 1, 28, 28\]"),
        ({"input": x[0]}, "shape"),
        ({"input": samples(5, 0)}, "1 to 4 samples"),
        ({"input": samples(0, 0)}, "1 to 4 samples"),
    ]:
        with pytest.raises(InputError, match=words):
            lenet.samples(feeds)


def test_an_onnx_file_is_served_at_every_size(tmp_path, reference):
    path = str(tmp_path / "lenet.onnx")
    gc.export_onnx(lenet5(batch=1), path)
    model = ServedModel.from_path(path, max_batch=2)
    assert model.name == "lenet" and model.sizes == (1, 2)
    x = samples(2, 40)
    [out] = model.run([{"input": x}])
    assert rel_err(out["softmax"], reference(x)) < 1e-5


def test_a_saved_model_pads_up_to_its_batch(tmp_path, reference):
    path = str(tmp_path / "lenet4.gcm")
    gc.compile(lenet5(batch=4), target="llvm").save(path)
    model = ServedModel.from_path(path, max_batch=32)
    assert model.sizes == (4,) and model.max_batch == 4  # code without a graph: its own batch
    x = samples(1, 41)
    [out] = model.run([{"input": x}])
    assert rel_err(out["softmax"], reference(x)) < 1e-5
    with pytest.raises(InputError, match="1 to 4 samples"):
        model.samples({"input": samples(5, 0)})
    with pytest.raises(InputError, match="saved model is llvm code"):
        ServedModel.from_path(path, target="reference")


def test_a_graph_that_mixes_samples_runs_only_at_its_own_batch(tmp_path):
    """A reshape that folds the batch into a row: re-binding is refused, so the server takes
    exactly the file's batch and pads nothing."""
    b = gc.GraphBuilder("mix")
    x = b.input("input", (2, 4))
    graph = b.build(gc.Dense(8, 3, seed=0)(gc.reshape(x, (1, 8))))
    path = tmp_path / "mix.py"
    path.write_text("import graphcnn as gc\nb = gc.GraphBuilder('mix')\n"
                    "x = b.input('input', (2, 4))\n"
                    "graph = b.build(gc.Dense(8, 3, seed=0)(gc.reshape(x, (1, 8))))\n")
    model = ServedModel.from_path(str(path), max_batch=8)
    assert model.sizes == (2,) and model.max_batch == 2 and not model.pad
    with pytest.raises(InputError, match="runs only at batch 2"):
        model.samples({"input": np.ones((1, 4), np.float32)})
    feeds = {"input": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)}
    assert model.samples(feeds) == 2
    [out] = model.run([feeds])
    ref = gc.compile(graph, target="reference").run(feeds)
    assert out.keys() == ref.keys()
    for name in ref:
        assert rel_err(out[name], ref[name]) < 1e-5


def test_a_missing_file_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        ServedModel.from_path(str(tmp_path / "nope.onnx"))


def test_predict_takes_any_number_of_samples(lenet, reference):
    x = samples(9, 42)  # max_batch 4: calls of 4, 4 and 1
    out = lenet.predict({"input": x})
    assert out["softmax"].shape == (9, 10) and rel_err(out["softmax"], reference(x)) < 1e-5
    groups = lenet.run_all([{"input": samples(k, k)} for k in (3, 2, 2, 1)])  # [3] [2 2] [1]
    assert [g["softmax"].shape[0] for g in groups] == [3, 2, 2, 1]
    with pytest.raises(InputError, match="datatype"):
        lenet.predict({"input": x.astype(np.float16)})


def test_non_finite_outputs_are_written_as_json_numbers():
    """NaN and infinities in an answer are written (as Python's json does), not a 500."""
    import json

    from graphcnn.serve.app import _encode_json

    y = np.array([[np.nan, np.inf, -np.inf, 1.5]], np.float32)
    answer = json.loads(_encode_json("m", {"y": y}, "r1"))
    data = answer["outputs"][0]["data"]
    assert answer["id"] == "r1" and np.isnan(data[0]) and data[1:] == [np.inf, -np.inf, 1.5]
