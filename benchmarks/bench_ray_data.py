"""Batch inference over a Ray Data dataset with graphcnn.ray.Predictor: images/s end to end.

    python benchmarks/bench_ray_data.py                       # 10k LeNet-5 images, 2 CPUs
    python benchmarks/bench_ray_data.py --images 2000 --batch-size 128

A local Ray cluster (ray.init with --cpus) runs `ds.map_batches(Predictor, ...)` over
--images random 1x28x28 images with ids; the answers are checked against one direct
`gc.compile` call on the same images (the ids must come back in order after sorting, the
outputs within rel L2 1e-5), so the figure counts right answers only. The model is saved once
(cm.save) and every actor loads it without compiling. Prints the wall time of the whole
map_batches run (the first actor's load included) and images/s; --json writes them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import ray

import graphcnn as gc
import graphcnn.ray
from graphcnn.models import lenet5


def _direct(model, x: np.ndarray, n: int) -> np.ndarray:
    """`x` through a batch-n model, the last chunk zero-padded to n."""
    outs = []
    for i in range(0, len(x), n):
        chunk = x[i:i + n]
        padded = np.concatenate([chunk, np.zeros((n - len(chunk), *x.shape[1:]), x.dtype)])
        outs.append(model(padded)[:len(chunk)])
    return np.concatenate(outs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=256, help="rows per map_batches call")
    p.add_argument("--max-batch", type=int, default=64, help="samples per native call")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=2, help="predictor actors")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()

    x = np.random.default_rng(0).standard_normal((args.images, 1, 28, 28)).astype(np.float32)
    graph = lenet5(batch=args.max_batch)
    want = _direct(gc.compile(graph), x, args.max_batch)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lenet.gcm")
        gc.compile(graph, threads=1).save(path)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            ds = ray.data.from_items([{"data": x[i], "id": i} for i in range(len(x))])
            start = time.perf_counter()
            rows = ds.map_batches(graphcnn.ray.Predictor,
                                  fn_constructor_kwargs={"path": path,
                                                         "columns": {"input": "data"}},
                                  batch_size=args.batch_size,
                                  concurrency=args.concurrency).take_all()
            seconds = time.perf_counter() - start
        finally:
            ray.shutdown()
    rows.sort(key=lambda r: r["id"])
    out_name = next(k for k in rows[0] if k not in ("data", "id"))
    got = np.stack([r[out_name] for r in rows])
    assert [r["id"] for r in rows] == list(range(len(x))), "rows lost or duplicated"
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    assert err <= 1e-5, f"rel L2 {err:.2e} against gc.compile"
    result = {"images": len(x), "seconds": seconds, "images_per_s": len(x) / seconds,
              "batch_size": args.batch_size, "concurrency": args.concurrency,
              "cpus": args.cpus, "rel_l2": err}
    print(f"Ray Data map_batches(graphcnn.ray.Predictor): {len(x)} LeNet-5 images in "
          f"{seconds:.2f} s = {result['images_per_s']:.0f} images/s "
          f"({args.concurrency} actors, batches of {args.batch_size}, rel L2 {err:.1e})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
