"""A ResNet basic block with the functional builder, before and after optimisation.

    python examples/resnet_block.py
"""
import numpy as np

import graphcnn as gc

b = gc.GraphBuilder("basic_block")
x = b.input("input", (1, 64, 28, 28))
y = gc.ReLU()(gc.BatchNorm2d(64)(gc.Conv2d(64, 64, 3, padding=1, bias=False)(x)))
y = gc.BatchNorm2d(64)(gc.Conv2d(64, 64, 3, padding=1, bias=False)(y))
graph = b.build(gc.ReLU()(y + x))

if __name__ == "__main__":
    print(graph, "\n")
    print(gc.optimize(graph, opt_level=2))   # batch norm folded, bias + residual + relu fused
    data = np.random.default_rng(0).standard_normal((1, 64, 28, 28)).astype(np.float32)
    ref = gc.compile(graph, target="reference")(data)
    out = gc.compile(graph, target="llvm")(data)
    print("llvm vs reference, rel L2:", np.linalg.norm(out - ref) / np.linalg.norm(ref))
