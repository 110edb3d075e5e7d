"""Debugging a compiled model: taps, per-layer profiles as a Chrome trace, `graphcnn debug`.

    python examples/taps_debug.py [trace.json]
    graphcnn debug examples/taps_debug.py --target llvm      # the same model from the shell

The llvm target folds each batch norm into its conv and fuses the relu: the bn values never
exist in the native code, yet `taps=` returns them (a debug build keeps them).
"""
import sys

import numpy as np

import graphcnn as gc

rng = np.random.default_rng(0)
gc.manual_seed(0)


def bn(c: int) -> gc.BatchNorm2d:
    return gc.BatchNorm2d(c, weight=rng.uniform(0.5, 2, c), bias=rng.standard_normal(c),
                          running_mean=rng.standard_normal(c), running_var=rng.uniform(0.5, 2, c))


model = gc.Sequential(
    gc.Conv2d(3, 8, 3, padding=1), bn(8), gc.ReLU(), gc.MaxPool2d(2),
    gc.Conv2d(8, 16, 3, padding=1), bn(16), gc.ReLU(), gc.GlobalAvgPool2d(), gc.Flatten(),
    gc.Dense(16, 10),
)
input_shape = (1, 3, 32, 32)

if __name__ == "__main__":
    graph = model.build(input_shape, name="small_cnn")
    x = rng.standard_normal(input_shape).astype(np.float32)
    cm = gc.compile(graph, target="llvm")
    ref = gc.compile(graph, target="reference")
    print("ops the llvm target runs:", [n.op for n in cm.graph.nodes])
    print("tensor names:", cm.tensor_names())

    taps = ["bn", "bn_1"]  # both fused away in the native code
    got, want = cm.run({"input": x}, taps=taps), ref.run({"input": x}, taps=taps)
    for name in [*cm.output_names, *taps]:
        err = np.linalg.norm(got[name] - want[name]) / np.linalg.norm(want[name])
        print(f"  %{name:<6} {got[name].shape}  rel L2 vs reference {err:.1e}")
        assert err < 1e-5, name
    try:
        cm.run({"input": x}, taps=["bn_2"])
    except gc.InputError as e:
        print("  unknown tap:", e)

    profile = cm.profile(x, runs=5)
    print(profile.format(top=5))
    trace = sys.argv[1] if len(sys.argv) > 1 else "taps_debug_trace.json"
    profile.write_trace(trace)
    print(f"wrote {trace}: open it in https://ui.perfetto.dev")
