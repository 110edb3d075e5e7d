"""LeNet-5 in the DSL, compiled for every target; also a model file for `graphcnn export`.

    python examples/lenet.py
    graphcnn export examples/lenet.py -o lenet.onnx
"""
import numpy as np

import graphcnn as gc

model = gc.Sequential(
    gc.Conv2d(1, 6, kernel_size=5, padding=2), gc.ReLU(), gc.MaxPool2d(2),
    gc.Conv2d(6, 16, 5), gc.ReLU(), gc.AvgPool2d(2),
    gc.Flatten(), gc.Dense(16 * 5 * 5, 120), gc.ReLU(), gc.Dense(120, 84), gc.ReLU(),
    gc.Dense(84, 10), gc.Softmax(),
)
input_shape = (1, 1, 28, 28)

if __name__ == "__main__":
    graph = model.build(input_shape, name="lenet5")
    print(graph)
    x = np.random.default_rng(0).random(input_shape, dtype=np.float32)
    ref = gc.compile(graph, target="reference")(x)
    for target in ("llvm", "onnxruntime"):
        y = gc.compile(graph, target=target)(x)
        print(f"{target:12s} class {int(y.argmax())}  rel err vs reference "
              f"{np.linalg.norm(y - ref) / np.linalg.norm(ref):.1e}")
