"""`graphcnn serve` as a user runs it: a subprocess on 127.0.0.1, real requests, and a SIGTERM
while requests wait for their batch: it runs them at once, and every one is answered before
the process ends."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
from serve_helpers import httpx, infer_body, metric, rel_err, samples, wait_for

from graphcnn.cli import main


class ServerProcess:
    """`python -m graphcnn serve ...` on port 0, its address read from uvicorn's log line."""

    def __init__(self, *args: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphcnn", "serve", *args, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.url: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: self.url is not None or self.proc.poll() is not None, 120)
        assert self.url is not None, "".join(self.lines)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if found:
                self.url = found.group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self._reader.join(10)
        return rc


def test_serve_answers_then_drains_on_sigterm(lenet_file, reference):
    server = ServerProcess(lenet_file, "--name", "lenet", "--max-batch", "4",
                           "--max-delay-ms", "600000", "--fixed-delay", "--timeout-s", "30",
                           "--log-level", "info")
    try:
        client = httpx.Client(base_url=server.url, timeout=60)
        wait_for(lambda: client.get("/v2/health/ready").status_code == 200, 120)
        xs = [samples(1, 50), samples(2, 51)]
        answers: list = [None, None]

        def send(i: int) -> None:
            answers[i] = httpx.post(f"{server.url}/v2/models/lenet/infer",
                                    json=infer_body(xs[i]), timeout=60)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        # both wait for their batch (3 of 4 samples, a 10 min delay) when the signal comes: it
        # runs them at once, long before their 30 s timeout (a 504) would end them
        wait_for(lambda: metric(client.get("/metrics").text, "graphcnn_queue_depth",
                                model="lenet") == 2)
        client.close()
        server.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        rc = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    log = "".join(server.lines)
    # uvicorn re-raises the signal once shut down, so the process ends by it, after the drain
    assert rc == -signal.SIGTERM, log
    for x, r in zip(xs, answers):
        assert r is not None and r.status_code == 200, log
        y = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(len(x), 10)
        assert rel_err(y, reference(x)) < 1e-5
    assert "lenet drained and stopped" in log


def test_serve_refuses_bad_options_and_files(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing.onnx")]) == 1
    assert "missing.onnx: no such file" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.onnx"), "--max-batch", "0"]) == 1
    assert "--max-batch" in capsys.readouterr().err
