"""`graphcnn demo`: the lesson, compiled and run on every available target."""
from __future__ import annotations

import time

import numpy as np

from graphcnn.backends import available_targets

from . import lesson
from .api import compile


def _grid(a: np.ndarray) -> list[str]:
    return [" ".join(f"{v:g}".rjust(5) for v in row) for row in a]


def _side_by_side(titles: list[str], grids: list[np.ndarray]) -> str:
    columns = [[t] + _grid(g) for t, g in zip(titles, grids)]
    width = [max(len(s) for s in col) + 4 for col in columns]
    rows = max(len(c) for c in columns)
    lines = []
    for r in range(rows):
        lines.append("   " + "".join((col[r] if r < len(col) else "").ljust(w)
                                     for col, w in zip(columns, width)).rstrip())
    return "\n".join(lines)


def _run(graph, target: str, x: np.ndarray, threads: int | None) -> np.ndarray:
    options = {"threads": threads} if threads and target != "reference" else {}
    return compile(graph, target=target, **options)(x)


def run_demo(threads: int | None = None) -> int:
    targets = available_targets()
    ok = True
    print("graphcnn demo: the CNN lesson, compiled\n")

    print("1. Convolution: slide the 3x3 filter over the 5x5 binary image (stride 1)")
    image = lesson.IMAGE.reshape(1, 1, 5, 5)
    maps = {t: _run(lesson.convolution_graph(1), t, image, threads)[0, 0] for t in targets}
    print(_side_by_side(["image", "filter", "feature map"],
                        [lesson.IMAGE, lesson.FILTER, maps[targets[0]]]))
    ok &= all(np.array_equal(m, lesson.FEATURE_MAP) for m in maps.values())

    print("\n2. Stride 2: the filter jumps two pixels, the map shrinks to 2x2")
    maps2 = {t: _run(lesson.convolution_graph(2), t, image, threads)[0, 0] for t in targets}
    print(_side_by_side(["feature map, stride 2"], [maps2[targets[0]]]))
    ok &= all(np.array_equal(m, lesson.FEATURE_MAP_STRIDE2) for m in maps2.values())

    print("\n3. Pooling a 4x4 map with 2x2 windows, stride 2")
    pooled = {}
    for kind in lesson.POOL_LAYERS:
        results = {t: _run(lesson.pooling_graph(kind), t, lesson.POOL_INPUT.reshape(1, 1, 4, 4),
                           threads)[0, 0] for t in targets}
        pooled[kind] = results[targets[0]]
        ok &= all(np.allclose(r, lesson.POOLED[kind], rtol=1e-6) for r in results.values())
    print(_side_by_side(["input", "max", "average", "sum"],
                        [lesson.POOL_INPUT, pooled["max"], pooled["average"], pooled["sum"]]))

    print("\n4. A small conv net: conv-relu-maxpool-conv-relu-avgpool-dense-softmax, "
          "4 noisy 12x12 images, 3 classes")
    graph = lesson.classifier().build((4, 1, 12, 12), name="lesson_net")
    x = lesson.classifier_inputs(4)
    probs, times = {}, {}
    for t in targets:
        start = time.perf_counter()
        cm = compile(graph, target=t, **({"threads": threads} if threads and t != "reference" else {}))
        probs[t] = cm(x)
        times[t] = time.perf_counter() - start
    ref = probs.get("reference", probs[targets[0]])
    print("   " + "target".ljust(13) + "".join(f"image {i}".ljust(24) for i in range(4)))
    for t in targets:
        cells = ["[" + " ".join(f"{p:.3f}" for p in row) + "]" for row in probs[t]]
        print("   " + t.ljust(13) + "".join(c.ljust(24) for c in cells)
              + f"compile+run {times[t] * 1000:.0f} ms")
    errors = {t: float(np.linalg.norm(p - ref) / np.linalg.norm(ref)) for t, p in probs.items()}
    sums_ok = all(np.allclose(p.sum(axis=1), 1, atol=1e-5) for p in probs.values())
    agree = max(errors.values()) <= 1e-5 and sums_ok
    ok &= agree
    worst = max(errors, key=errors.get)
    print(f"\nsummary: {len(targets)} targets ({', '.join(targets)}): "
          f"{'agree' if agree else 'DISAGREE'} (worst rel L2 error {errors[worst]:.1e}, {worst}); "
          f"lesson feature maps and pools {'match' if ok else 'DO NOT match'} on every target; "
          f"probabilities sum to 1: {'yes' if sums_ok else 'NO'}")
    return 0 if ok else 1
