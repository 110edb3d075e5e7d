"""The HTTP server end to end: real requests to a real server, answers against the reference
interpreter, batching read off the metrics, and every error path (4xx, 503, 504)."""
from __future__ import annotations

import io
import threading

import numpy as np
from serve_helpers import (
    Gate,
    infer_body,
    metric,
    rel_err,
    running,
    samples,
    wait_for,
)

URL = "/v2/models/lenet/infer"


def test_health_and_metadata(lenet):
    with running(lenet) as (client, _):
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2").json()["name"] == "graphcnn"
        meta = client.get("/v2/models/lenet").json()
        assert meta["platform"] == "graphcnn" and meta["precision"] == "fp32"
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
        assert meta["outputs"] == [{"name": "softmax", "datatype": "FP32", "shape": [-1, 10]}]
        assert meta["max_batch_size"] == 4 and meta["batch_sizes"] == [1, 2, 4]
        assert client.get("/v2/models/lenet/ready").json() == {"name": "lenet", "ready": True}
        assert client.get("/v2/models/other").status_code == 404


def test_json_inference_matches_the_reference(lenet, reference):
    with running(lenet) as (client, _):
        for k, seed in ((1, 0), (3, 1), (4, 2)):  # 3 samples pad up to the batch-4 variant
            x = samples(k, seed)
            r = client.post(URL, json={**infer_body(x), "id": f"req-{k}"})
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["model_name"] == "lenet" and answer["id"] == f"req-{k}"
            [out] = answer["outputs"]
            assert out["name"] == "softmax" and out["datatype"] == "FP32"
            assert out["shape"] == [k, 10]
            y = np.array(out["data"], np.float32).reshape(k, 10)
            assert rel_err(y, reference(x)) < 1e-5


def test_binary_bodies_raw_and_npy(lenet, reference):
    x = samples(2, 3)
    with running(lenet) as (client, _):
        r = client.post(URL, content=x.tobytes(), headers={
            "Content-Type": "application/octet-stream", "X-Shape": "2,1,28,28"})
        assert r.status_code == 200, r.text
        assert r.headers["x-shape"] == "2,10" and r.headers["x-output-name"] == "softmax"
        y = np.frombuffer(r.content, np.float32).reshape(2, 10)
        assert rel_err(y, reference(x)) < 1e-5
        buf = io.BytesIO()
        np.save(buf, x)
        r = client.post(URL, content=buf.getvalue(), headers={"Content-Type": "application/x-npy"})
        assert r.status_code == 200, r.text
        assert rel_err(np.load(io.BytesIO(r.content)), reference(x)) < 1e-5


def test_concurrent_requests_run_as_one_batch(lenet, reference):
    """Four single-sample requests sent together, with a delay far longer than sending takes: the
    batch closes when it holds max_batch (4) samples, so exactly one native call of 4 runs (a
    fixed delay: the first request waits even though it found the server empty)."""
    xs = [samples(1, 10 + i) for i in range(4)]
    answers: list = [None] * 4
    with running(lenet, max_delay_ms=20_000, adaptive_delay=False, timeout_s=60) as (client, _):
        def send(i: int) -> None:
            answers[i] = client.post(URL, json=infer_body(xs[i]))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        text = client.get("/metrics").text
    for x, r in zip(xs, answers):
        assert r.status_code == 200, r.text
        y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(1, 10)
        assert rel_err(y, reference(x)) < 1e-5
    assert metric(text, "graphcnn_batch_size_count", model="lenet") == 1
    assert metric(text, "graphcnn_batch_size_sum", model="lenet") == 4
    assert metric(text, "graphcnn_batch_size_bucket", model="lenet", le="2.0") == 0
    assert metric(text, "graphcnn_requests_total", model="lenet") == 4
    assert metric(text, "graphcnn_request_latency_seconds_count", model="lenet") == 4


def test_a_batch_holds_whole_requests(lenet, reference):
    """Queued behind a busy worker, 3 then 2 samples exceed max_batch 4: they run as two calls
    (3 padded to 4, then 2), never one request split over two."""
    c, a, b = samples(1, 19), samples(3, 20), samples(2, 21)
    answers = {}
    with running(lenet, max_delay_ms=0, workers=1) as (client, app), Gate(lenet) as gate:
        def send(key, x):
            answers[key] = client.post(URL, json=infer_body(x))

        threads = [threading.Thread(target=send, args=("c", c))]
        threads[0].start()
        assert gate.entered.wait(60)  # c runs (held) and takes the one worker
        for depth, (key, x) in enumerate((("a", a), ("b", b)), 1):
            threads.append(threading.Thread(target=send, args=(key, x)))
            threads[-1].start()
            wait_for(lambda d=depth: app.state.batcher.depth == d)  # queued in this order
        gate.release.set()
        for t in threads:
            t.join()
        text = client.get("/metrics").text
    for key, x in (("c", c), ("a", a), ("b", b)):
        y = np.array(answers[key].json()["outputs"][0]["data"], np.float32).reshape(len(x), 10)
        assert rel_err(y, reference(x)) < 1e-5
    assert metric(text, "graphcnn_batch_size_count", model="lenet") == 3
    assert metric(text, "graphcnn_batch_size_sum", model="lenet") == 6
    assert metric(text, "graphcnn_padded_batch_size_sum", model="lenet") == 7  # 1 + 4 + 2


def test_bad_requests_are_4xx_and_the_server_goes_on(lenet, reference):
    x = samples(1, 4)
    good = infer_body(x)
    raw = {"Content-Type": "application/octet-stream"}
    cases = [
        (400, "shape", {"inputs": [{**good["inputs"][0], "shape": [1, 1, 28, 27],
                                    "data": [0.5] * 756}]}),
        (400, "datatype", {"inputs": [{**good["inputs"][0], "datatype": "FP64"}]}),
        (400, "datatype", {"inputs": [{**good["inputs"][0], "datatype": "COMPLEX"}]}),
        (400, "values for shape", {"inputs": [{**good["inputs"][0], "data": [0.5] * 10}]}),
        (400, "not FP32 values", {"inputs": [{**good["inputs"][0], "data": ["a"] * 784}]}),
        (400, "missing", {"inputs": [{**good["inputs"][0], "name": "image"}]}),
        (400, "`shape` is missing", {"inputs": [{"name": "input", "datatype": "FP32",
                                                "data": []}]}),
        (400, "non-empty list", {"inputs": []}),
        (400, "JSON object", [1, 2]),
        (400, "unknown output", {**good, "outputs": [{"name": "logits"}]}),
        (400, "1 to 4 samples", infer_body(samples(5, 5))),
        # a shape whose product wraps int64 to 0 beside no data
        (400, "values for shape", {"inputs": [{**good["inputs"][0], "shape": [2**32, 2**32],
                                               "data": []}]}),
    ]
    with running(lenet, max_body_bytes=1 << 20) as (client, _):
        for status, words, body in cases:
            r = client.post(URL, json=body)
            assert r.status_code == status and words in r.json()["error"], (body, r.text)
        for content, headers, status, words in [
            (b"{not json", {}, 400, "not JSON"),
            (b"\x00" * 100, raw, 400, "X-Shape"),
            (b"\x00" * 100, {**raw, "X-Shape": "1,1,28,28"}, 400, "bytes for shape"),
            (b"\x00" * 100, {**raw, "X-Shape": "1,x"}, 400, "comma-separated"),
            (b"", {**raw, "X-Shape": f"{2**32},{2**32}"}, 400, "bytes for shape"),
            (b"not npy", {"Content-Type": "application/x-npy"}, 400, "not an .npy"),
            (b"0" * ((1 << 20) + 1), {}, 413, "over the limit"),
        ]:
            r = client.post(URL, content=content, headers=headers)
            assert r.status_code == status and words in r.json()["error"], (content[:20], r.text)
        r = client.post("/v2/models/resnet/infer", json=good)
        assert r.status_code == 404 and "unknown model 'resnet'" in r.json()["error"]
        r = client.post(URL, json=good)  # still serving, and right
        assert r.status_code == 200
        y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(1, 10)
        assert rel_err(y, reference(x)) < 1e-5
        text = client.get("/metrics").text
    assert metric(text, "graphcnn_request_errors_total", model="lenet", code="400") == 18
    assert metric(text, "graphcnn_request_errors_total", model="lenet", code="413") == 1
    assert metric(text, "graphcnn_request_errors_total", model="lenet", code="404") == 1


def test_a_full_queue_answers_503_with_retry_after(lenet, reference):
    """One worker held by a busy model, a queue of one: the third request is refused at once."""
    xa, xb = samples(1, 6), samples(1, 7)
    answers = {}
    with running(lenet, queue_size=1, workers=1, max_delay_ms=0) as (client, app), \
            Gate(lenet) as gate:
        def send(key, x):
            answers[key] = client.post(URL, json=infer_body(x))

        ta = threading.Thread(target=send, args=("a", xa))
        ta.start()
        assert gate.entered.wait(60)  # a's batch is running (held)
        tb = threading.Thread(target=send, args=("b", xb))
        tb.start()
        wait_for(lambda: app.state.batcher.depth == 1)  # b waits in the queue
        # the event loop stays free while the native call is held
        assert client.get("/v2/health/live").status_code == 200
        assert metric(client.get("/metrics").text, "graphcnn_queue_depth", model="lenet") == 1
        r = client.post(URL, json=infer_body(samples(1, 8)))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "queue is full" in r.json()["error"]
        gate.release.set()
        ta.join()
        tb.join()
    for key, x in (("a", xa), ("b", xb)):
        assert answers[key].status_code == 200
        y = np.array(answers[key].json()["outputs"][0]["data"], np.float32).reshape(1, 10)
        assert rel_err(y, reference(x)) < 1e-5


def test_a_late_answer_is_504(lenet, reference):
    with running(lenet, timeout_s=0.2, max_delay_ms=0) as (client, _), Gate(lenet) as gate:
        r = client.post(URL, json=infer_body(samples(1, 9)))
        assert r.status_code == 504 and "no answer within 0.2 s" in r.json()["error"]
        gate.release.set()
        x = samples(1, 10)
        r = client.post(URL, json=infer_body(x))  # the next one is answered
        assert r.status_code == 200
        y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(1, 10)
        assert rel_err(y, reference(x)) < 1e-5
        text = client.get("/metrics").text
    assert metric(text, "graphcnn_request_errors_total", model="lenet", code="504") == 1


def test_a_timed_out_request_leaves_the_queue(lenet):
    """A request that got its 504 while queued holds no slot: with a queue of one, the next
    request is queued (and times out in turn, the worker still held), not refused with 503."""
    with running(lenet, queue_size=1, workers=1, max_delay_ms=0, timeout_s=0.5) as (client, app), \
            Gate(lenet) as gate:
        held = threading.Thread(target=client.post, args=(URL,),
                                kwargs={"json": infer_body(samples(1, 30))})
        held.start()
        assert gate.entered.wait(60)  # the one worker is held
        for seed in (31, 32):
            r = client.post(URL, json=infer_body(samples(1, seed)))
            assert r.status_code == 504, r.text
        assert app.state.batcher.depth == 0
        gate.release.set()
        held.join()


def test_a_lone_client_does_not_wait_out_the_delay(lenet, reference):
    """One request at a time with a delay of ten minutes and a timeout of 30 s: each finds the
    server empty, so each runs at once (a fixed delay would answer every one with 504)."""
    with running(lenet, max_delay_ms=600_000, timeout_s=30) as (client, app):
        for i in range(6):
            x = samples(1, 40 + i)
            r = client.post(URL, json=infer_body(x))
            assert r.status_code == 200, r.text
            y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(1, 10)
            assert rel_err(y, reference(x)) < 1e-5
        assert not app.state.batcher.load.busy
        text = client.get("/metrics").text
    assert metric(text, "graphcnn_batch_size_count", model="lenet") == 6


def test_concurrent_arrivals_make_the_batcher_wait_for_company(lenet, reference):
    """Requests queued behind a busy worker each find others in the server: the load turns
    busy, so after the worker frees the first queued request waits for the rest (the delay
    ends when the batch is full: max_batch 4 = the 4 queued samples) and one call runs them."""
    xs = [samples(1, 60 + i) for i in range(5)]
    answers: list = [None] * 5
    with running(lenet, max_delay_ms=600_000, timeout_s=60, workers=1) as (client, app), \
            Gate(lenet) as gate:
        def send(i: int) -> None:
            answers[i] = client.post(URL, json=infer_body(xs[i]))

        threads = [threading.Thread(target=send, args=(0,))]
        threads[0].start()
        assert gate.entered.wait(60)  # the first ran at once (an empty server) and is held
        for i in range(1, 5):
            threads.append(threading.Thread(target=send, args=(i,)))
            threads[-1].start()
            wait_for(lambda d=i: app.state.batcher.depth == d)
        assert app.state.batcher.load.busy
        gate.release.set()
        for t in threads:
            t.join()
        text = client.get("/metrics").text
    for x, r in zip(xs, answers):
        y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(1, 10)
        assert rel_err(y, reference(x)) < 1e-5
    assert metric(text, "graphcnn_batch_size_count", model="lenet") == 2
    assert metric(text, "graphcnn_batch_size_sum", model="lenet") == 5


def test_a_bf16_model_says_so_and_stays_close(lenet_file, reference):
    from graphcnn.backends.llvm.codegen import has_bf16

    from graphcnn.serve import ServedModel

    model = ServedModel.from_path(lenet_file, name="lenet", max_batch=2, precision="bf16")
    want = "bf16" if has_bf16("host") else "fp32"  # float32 (a PrecisionWarning) without it
    with running(model) as (client, _):
        assert client.get("/v2/models/lenet").json()["precision"] == want
        x = samples(2, 80)
        r = client.post(URL, json=infer_body(x))
        assert r.status_code == 200, r.text
        y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(2, 10)
        assert rel_err(y, reference(x)) < 1e-2
