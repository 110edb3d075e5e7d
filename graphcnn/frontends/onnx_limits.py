"""The import's default size limits (onnx_safety.Limits applies them), in a module of their own
so that the import snapshot's fast path (onnx_snapshot) knows them without importing onnx."""
from __future__ import annotations

DEFAULT_MAX_TENSOR_BYTES = 1 << 30  # 1 GiB: VGG-16's largest weight is 0.4 GiB
DEFAULT_MAX_TOTAL_BYTES = 2 << 30  # VGG-19's weights are 0.55 GiB; = the compile budget
