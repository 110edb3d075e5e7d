"""Helpers for the serving tests: a real uvicorn.Server on 127.0.0.1 (port 0: the OS picks a free
port) in a thread, requests and the metrics they leave. Importing it skips a test module when
the serve extra is not installed."""
from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("httpx", reason="the serve extra (httpx) is not installed")
pytest.importorskip("prometheus_client", reason="the serve extra (prometheus_client) is not "
                    "installed")

import httpx
import uvicorn

from graphcnn.serve import ServedModel, create_app
from graphcnn.serve.app import ServeConfig


def samples(k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((k, 1, 28, 28)).astype(np.float32)


def infer_body(x: np.ndarray, name: str = "input") -> dict:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}


def rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


@contextlib.contextmanager
def running(model: ServedModel, **config):
    """The app for `model` on a uvicorn server in a thread; yields (httpx client, app)."""
    config.setdefault("max_batch", model.max_batch)
    app = create_app(model, ServeConfig(**config))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive())
        assert server.started, "the server did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_for(lambda: client.get("/v2/health/ready").status_code == 200)
            yield client, app
    finally:
        server.should_exit = True
        thread.join(60)


def wait_for(condition, limit_s: float = 60) -> None:
    """Poll a condition (a state of the server, never a duration) until it holds."""
    end = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


class Gate:
    """Holds the model's native calls until released: a model that is busy, on demand."""

    def __init__(self, model: ServedModel):
        self.model, self.entered, self.release = model, threading.Event(), threading.Event()
        self._run = model.run

    def __enter__(self):
        def held(requests):
            self.entered.set()
            self.release.wait(60)
            return self._run(requests)

        self.model.run = held
        return self

    def __exit__(self, *exc):
        self.release.set()
        del self.model.run


def metric(text: str, name: str, **labels) -> float:
    """One sample's value from a Prometheus text exposition."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        series, _, rest = key.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if series == name and got == want:
            return float(value)
    raise AssertionError(f"no sample {name}{{{want}}} in the metrics")
