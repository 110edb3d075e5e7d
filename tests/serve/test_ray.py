"""graphcnn.ray on a real local Ray cluster (2 CPUs, started here): the Serve deployment over
handles and HTTP, batched by @serve.batch, and Ray Data's map_batches with the Predictor,
against the reference interpreter. Slow (Ray starts in seconds, not milliseconds)."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
from serve_helpers import httpx, infer_body, rel_err, samples

ray = pytest.importorskip("ray", reason="the ray extra (ray[serve,data]) is not installed")
serve = pytest.importorskip("ray.serve", reason="the ray extra (ray[serve]) is not installed")
pytest.importorskip("ray.data", reason="the ray extra (ray[data]) is not installed")

import graphcnn as gc
import graphcnn.ray
from graphcnn.models import lenet5

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    env = {k: os.environ[k] for k in ("GRAPHCNN_CACHE_DIR",) if k in os.environ}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env},
             log_to_driver=False)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """LeNet-5 compiled at batch 4 and saved: what a deployment loads without compiling."""
    path = str(tmp_path_factory.mktemp("ray") / "lenet4.gcm")
    gc.compile(lenet5(batch=4), target="llvm").save(path)
    return path


def test_deployment_batches_requests_and_answers_over_http(cluster, saved, reference):
    app = graphcnn.ray.deployment(saved, name="lenet", max_batch_size=4,
                                  batch_wait_timeout_s=30.0, ray_actor_options={"num_cpus": 1},
                                  autoscaling_config={"min_replicas": 1, "max_replicas": 1})
    handle = serve.run(app, name="lenet", route_prefix="/lenet")
    meta = handle.metadata.remote().result()
    assert meta["max_batch_size"] == 4 and meta["inputs"] == [["input", "float32",
                                                               [-1, 1, 28, 28]]]
    # four requests at once against a 30 s wait: @serve.batch closes the batch at four
    xs = [samples(1, 60 + i) for i in range(4)]
    pending = [handle.predict.remote(x) for x in xs]
    for x, response in zip(xs, pending):
        out = response.result()
        assert rel_err(out["softmax"], reference(x)) < 1e-5
    assert handle.stats.remote().result() == {"batch_sizes": [4]}
    status = serve.status().applications["lenet"].deployments["GraphcnnDeployment"]
    assert status.status == "HEALTHY"

    serve.delete("lenet")


def test_deployment_answers_kserve_json_over_http(cluster, saved, reference):
    # Serve's options pass through: autoscaling between 2 and 2 replicas starts two
    app = graphcnn.ray.deployment(saved, name="lenet", batch_wait_timeout_s=0.001,
                                  ray_actor_options={"num_cpus": 0.5},
                                  autoscaling_config={"min_replicas": 2, "max_replicas": 2})
    serve.run(app, name="lenet-http", route_prefix="/lenet")
    status = serve.status().applications["lenet-http"].deployments["GraphcnnDeployment"]
    assert status.replica_states == {"RUNNING": 2}
    x = samples(2, 70)
    r = httpx.post(f"{cluster}/lenet", json=infer_body(x), timeout=120)
    assert r.status_code == 200, r.text
    y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(2, 10)
    assert rel_err(y, reference(x)) < 1e-5
    bad = infer_body(samples(1, 0))
    bad["inputs"][0]["shape"] = [1, 1, 28, 27]
    bad["inputs"][0]["data"] = bad["inputs"][0]["data"][:756]
    r = httpx.post(f"{cluster}/lenet", json=bad, timeout=120)
    assert r.status_code == 400 and "shape [1, 1, 28, 27]" in r.json()["error"]
    r = httpx.post(f"{cluster}/lenet", content=b"{nope", timeout=120)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    serve.delete("lenet-http")


def test_predictor_maps_ray_data_batches(cluster, saved, reference):
    x = samples(10, 80)
    ds = ray.data.from_items([{"input": x[i], "id": i} for i in range(10)])
    # batches of 6 on a batch-4 model: one call of 4, one of 2 padded to 4; then 4
    out = ds.map_batches(graphcnn.ray.Predictor, fn_constructor_kwargs={"path": saved},
                         batch_size=6, concurrency=1).take_all()
    out.sort(key=lambda row: row["id"])
    assert [row["id"] for row in out] == list(range(10))
    y = np.stack([row["softmax"] for row in out])
    assert y.shape == (10, 10) and rel_err(y, reference(x)) < 1e-5


def test_predictor_columns(saved, reference):
    predictor = graphcnn.ray.Predictor(saved)
    with pytest.raises(gc.InputError, match=r"no column\(s\) \['input'\]"):
        predictor({"image": samples(2, 0), "id": np.arange(2)})
    out = predictor({"image": samples(2, 1)})  # one column for a one-input model: taken
    assert out["softmax"].shape == (2, 10)
    renamed = graphcnn.ray.Predictor(saved, columns={"input": "image"})
    x = samples(5, 2)
    out = renamed({"image": x, "id": np.arange(5)})  # 5 samples: calls of 4, then 1 padded
    assert out["id"].tolist() == list(range(5))
    assert rel_err(out["softmax"], reference(x)) < 1e-5
