"""The error hierarchy: every failure graphcnn reports is a GraphcnnError subclass.

Messages name the node and the op involved, so a user can find the culprit in a printed graph.
"""
from __future__ import annotations


class GraphcnnError(Exception):
    """Base of every error graphcnn raises on purpose."""


class GraphError(GraphcnnError):
    """A malformed graph: cycle, dangling value, broken use lists, duplicate names."""


class ShapeError(GraphcnnError):
    """Shapes or attributes that do not fit an op's shape rule."""


class UnsupportedOpError(GraphcnnError):
    """Ops graphcnn does not support; lists every one of a model at once."""

    def __init__(self, message: str, ops: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.ops = ops or {}  # op type -> node names using it


class ModelLoadError(GraphcnnError):
    """An unreadable, truncated, inconsistent or malicious model file."""


class InputError(GraphcnnError):
    """Wrong input name, shape or dtype given to a compiled model."""


class CompileError(GraphcnnError):
    """A backend could not compile the graph."""


def where(node) -> str:
    """'node conv_3 (conv)' for messages; accepts anything with .name and .op."""
    return f"node {node.name!r} ({node.op})"


class InvalidOptionError(CompileError, ValueError):
    """A compile option out of its range (opt_level, cpu); the message lists the valid ones.
    Also a ValueError, which such errors were before."""


class PrecisionWarning(UserWarning):
    """A precision the target CPU cannot compute in (bf16 without AVX512-BF16): the model is
    compiled in float32 instead."""


class CacheIntegrityWarning(UserWarning):
    """A compile-cache entry or directory that failed its checks and was not used."""
