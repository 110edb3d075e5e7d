"""`graphcnn serve` under load: throughput and p50/p99 latency at 1/4/16/64 concurrent clients,
with dynamic batching and without, on 127.0.0.1 only.

    python benchmarks/bench_serve.py                          # LeNet-5, 3 s per point
    python benchmarks/bench_serve.py --model resnet50 --seconds 10 --clients 1,4,16
    python benchmarks/bench_serve.py --body json --json out.json
    python benchmarks/bench_serve.py --seconds 0.5 --clients 1,4   # a smoke run

The server is `python -m graphcnn serve` in a subprocess (its own interpreter, so client threads
do not share its GIL), once per setting: "batched" (--max-batch 32 --max-delay-ms 2) and
"unbatched" (--max-batch 1 --max-delay-ms 0), each on the llvm target and on onnxruntime
behind the same server (ort-batched, ort-unbatched). Each client is a thread sending one
single-sample request after another on its own keep-alive connection; a point runs --seconds
after a short warm-up, so the whole run takes about len(settings) x len(clients) x seconds plus
compiles. Latency is the client's (request sent to answer read); samples/s counts answered
requests.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np

MODELS = {  # a DSL model file per model (graphcnn.models, seeded weights)
    "lenet": ("from graphcnn.models import lenet5\ngraph = lenet5(batch=1)\n", (1, 1, 28, 28)),
    "resnet50": ("from graphcnn.models import resnet50\ngraph = resnet50(batch=1)\n",
                 (1, 3, 224, 224)),
}
BATCHED, UNBATCHED = ["--max-batch", "32", "--max-delay-ms", "2"], ["--max-batch", "1",
                                                                   "--max-delay-ms", "0"]
SETTINGS = {"batched": BATCHED, "unbatched": UNBATCHED,  # the llvm target
            "ort-batched": ["--target", "onnxruntime", *BATCHED],
            "ort-unbatched": ["--target", "onnxruntime", *UNBATCHED]}


class Server:
    """`python -m graphcnn serve FILE --port P ...` on a free port P, ready once
    /v2/health/ready says 200 (every batch size compiled)."""

    def __init__(self, path: str, args: list[str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphcnn", "serve", path, "--name", "m", "--host",
             "127.0.0.1", "--port", str(port), "--queue-size", "1024", "--log-level", "warning",
             *args], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 600  # a cold ResNet-50 compiles every batch size first
        with httpx.Client(base_url=self.url) as c:
            while True:
                if self.proc.poll() is not None or time.monotonic() > end:
                    self.log.seek(0)
                    log = self.log.read()
                    self.stop()
                    raise SystemExit("the server did not get ready:\n" + log)
                try:
                    if c.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def request_maker(shape: tuple[int, ...], body: str):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if body == "json":
        payload = json.dumps({"inputs": [{"name": "input", "shape": list(shape),
                                          "datatype": "FP32", "data": x.ravel().tolist()}]})
        return payload.encode(), {"Content-Type": "application/json"}
    return x.tobytes(), {"Content-Type": "application/octet-stream",
                         "X-Shape": ",".join(map(str, shape))}


def load(url: str, clients: int, seconds: float, content: bytes, headers: dict) -> dict:
    """`clients` threads in a closed loop for `seconds` (after 10% warm-up)."""
    start = time.perf_counter()
    warm_until, stop_at = start + 0.1 * seconds, start + 1.1 * seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while (now := time.perf_counter()) < stop_at:
                r = c.post("/v2/models/m/infer", content=content, headers=headers)
                done = time.perf_counter()
                if r.status_code != 200:
                    errors[i] += 1
                elif now >= warm_until:
                    latencies[i].append(done - now)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = np.array([v for per in latencies for v in per])
    return {"clients": clients, "requests": int(lat.size), "errors": sum(errors),
            "per_s": lat.size / seconds,
            "p50_ms": float(np.percentile(lat, 50) * 1e3) if lat.size else float("nan"),
            "p99_ms": float(np.percentile(lat, 99) * 1e3) if lat.size else float("nan")}


def batch_stats(url: str) -> tuple[float, float]:
    """(native calls, mean samples per call) from the server's /metrics."""
    text = httpx.get(f"{url}/metrics").text
    values = {}
    for name in ("graphcnn_batch_size_count", "graphcnn_batch_size_sum"):
        found = re.search(rf'^{name}{{model="m"}} (\S+)$', text, re.MULTILINE)
        values[name] = float(found.group(1)) if found else 0.0
    calls = values["graphcnn_batch_size_count"]
    return calls, values["graphcnn_batch_size_sum"] / calls if calls else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="lenet")
    p.add_argument("--clients", default="1,4,16,64", help="comma-separated client counts")
    p.add_argument("--seconds", type=float, default=3.0, help="measured time per point")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help="comma-separated, of %(default)s (ort-: onnxruntime behind the server)")
    p.add_argument("--body", choices=["raw", "json"], default="raw")
    p.add_argument("--threads", type=int, default=None, help="the server's native threads")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    source, shape = MODELS[args.model]
    content, headers = request_maker(shape, args.body)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{args.model}.py")
        with open(path, "w") as f:
            f.write(source)
        for setting in args.settings.split(","):
            extra = SETTINGS[setting] + (["--threads", str(args.threads)] if args.threads else [])
            server = Server(path, extra)
            try:
                for n in counts:
                    before = batch_stats(server.url)
                    row = load(server.url, n, args.seconds, content, headers)
                    after = batch_stats(server.url)
                    calls = after[0] - before[0]
                    samples = after[0] * after[1] - before[0] * before[1]
                    row.update(setting=setting, model=args.model,
                               mean_batch=samples / calls if calls else 0.0)
                    results.append(row)
                    print(f"{args.model:9s} {setting:13s} clients {n:3d}: {row['per_s']:8.1f} "
                          f"req/s  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
                          f"mean batch {row['mean_batch']:5.2f}  errors {row['errors']}",
                          flush=True)
            finally:
                server.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
