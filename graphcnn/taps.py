"""Taps: named intermediates of a compiled model, also those that fusion removed.

    outs = cm.run({"input": x}, taps=["bn_1", "relu_2"])
    outs["bn_1"]                     # the outputs first (cm.output_names), then each tap

A tap names a value of the graph as the user gave it (`cm.tensor_names()`: the names the text
IR printer shows). The model answers from a debug build of the same target and options: the
user's graph with the tapped values made extra graph outputs *before* the pass pipeline, so no
pass may fuse them away (passes keep graph outputs: passes/util.py `single_private_use`) and
the pipeline restores their names (`restore_output_names`). Each set of taps is built once and
kept on the model.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .ir import Graph


class UnknownTapError(InputError):
    """A tap names no value of the model's graph; the message lists the closest names."""


@dataclass
class Recipe:
    """How a model was compiled: what a debug build needs to compile it again with taps."""

    graph: Graph  # a copy of the graph as the user gave it
    compiler: Callable[..., Any]  # gc.compile (passed in: this module sits below the api)
    target: str
    opt_level: int | None
    fallback: str | None
    options: dict[str, Any]
    builds: dict[tuple[str, ...], Any] = field(default_factory=dict)  # taps -> tap model


def tensor_names(graph: Graph) -> list[str]:
    """Every value a node computes, in topological order (inputs and constants are known)."""
    return [v.name for node in graph.nodes for v in node.outputs]


def check_taps(graph: Graph, taps: Sequence[str]) -> list[str]:
    """The tap names, unique and in order; an UnknownTapError for a name the graph lacks."""
    if isinstance(taps, str) or not all(isinstance(t, str) for t in taps):
        raise InputError(f"taps must be a list of value names, got {taps!r}")
    known = tensor_names(graph)
    known_set = set(known)
    for name in taps:
        if name not in known_set:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else f"names are {known[:10]}..."
            raise UnknownTapError(f"graph {graph.name!r} has no value {name!r} to tap ({hint}; "
                                  "cm.tensor_names() lists them all)")
    return list(dict.fromkeys(taps))


def tapped_graph(graph: Graph, taps: Sequence[str]) -> Graph:
    """A copy of `graph` whose outputs are its own followed by the tapped values."""
    tapped = graph.copy()
    by_name = {v.name: v for node in tapped.nodes for v in node.outputs}
    tapped.set_outputs(list(tapped.outputs) + [by_name[name] for name in taps])
    return tapped


def tap_model(recipe: Recipe, taps: list[str]) -> Any:
    """The debug build for `taps` (compiled on first use, then kept)."""
    key = tuple(taps)
    if key not in recipe.builds:
        options = dict(recipe.options)
        if recipe.fallback is not None:
            options["fallback"] = recipe.fallback
        recipe.builds[key] = recipe.compiler(tapped_graph(recipe.graph, taps), target=recipe.target,
                                     opt_level=recipe.opt_level, **options)
    return recipe.builds[key]
