"""graphcnn on Ray: a Ray Serve deployment and a Ray Data predictor. Needs the `ray` extra
(pip install 'graphcnn[ray]').

    from ray import serve
    import graphcnn.ray
    serve.run(graphcnn.ray.deployment("lenet.gcm", max_batch_size=16,
                                      autoscaling_config={"min_replicas": 1, "max_replicas": 4}))

    ds.map_batches(graphcnn.ray.Predictor, fn_constructor_kwargs={"path": "lenet.gcm"},
                   batch_size=64, concurrency=2)

Both load a model file the way `graphcnn serve` does (graphcnn.serve.ServedModel: a saved
model from cm.save, which loads without compiling, or an .onnx / DSL .py file compiled once per
batch size in each replica). The deployment batches with Ray Serve's own `@serve.batch` (each
replica gathers up to max_batch_size requests, then one native call per max_batch samples);
Ray Serve's options (autoscaling_config, num_replicas, ray_actor_options, ...) pass through.
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from graphcnn.errors import GraphcnnError, InputError

try:
    from ray import serve
except ImportError as e:  # the module is the extra's front door: say which install is missing
    raise GraphcnnError(f"graphcnn.ray needs Ray Serve: pip install 'graphcnn[ray]' ({e})") \
        from None

from graphcnn.serve import protocol
from graphcnn.serve.model import ServedModel


@serve.deployment
class GraphcnnDeployment:
    """One replica: the model, Ray Serve's batching in front of it.

    Called through a handle: `predict(inputs)` with a dict of input name -> array (or one
    array for a one-input model), k samples each, answers a dict of output name -> array.
    Over HTTP: a KServe v2 JSON inference request (graphcnn/serve/protocol.py) to the route."""

    def __init__(self, path: str, name: str | None = None, target: str = "llvm",
                 max_batch_size: int = 32, batch_wait_timeout_s: float = 0.002,
                 threads: int | None = None):
        self.model = ServedModel.from_path(path, name=name, target=target,
                                           max_batch=max_batch_size,
                                           **({"threads": threads} if threads else {}))
        self.model.warm()
        self._batched.set_max_batch_size(self.model.max_batch)
        self._batched.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.batch_sizes: list[int] = []  # requests per Serve batch, for stats()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)  # re-set per model in __init__
    async def _batched(self, requests: list[dict[str, np.ndarray]]) -> list[dict]:
        self.batch_sizes.append(len(requests))
        return await asyncio.to_thread(self.model.run_all, requests)

    async def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        feeds = self._feeds(inputs)
        self.model.samples(feeds)  # a bad request fails alone, before it joins a batch
        return await self._batched(feeds)

    def _feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        names = [n for n, _, _ in self.model.inputs]
        if isinstance(inputs, np.ndarray):
            if len(names) != 1:
                raise InputError(f"model {self.model.name!r} has inputs {names}: pass a dict")
            return {names[0]: inputs}
        if not isinstance(inputs, dict) or not all(isinstance(v, np.ndarray)
                                                   for v in inputs.values()):
            raise InputError(f"predict takes a dict of input name -> numpy array, got "
                             f"{type(inputs).__name__}")
        return inputs

    def metadata(self) -> dict:
        return {"name": self.model.name, "platform": "graphcnn", "target": self.model.target,
                "max_batch_size": self.model.max_batch, "batch_sizes": list(self.model.sizes),
                "inputs": [[n, str(d), [-1, *s]] for n, d, s in self.model.inputs],
                "outputs": [[n, str(d), [-1, *s]] for n, d, s in self.model.outputs]}

    def stats(self) -> dict:
        return {"batch_sizes": list(self.batch_sizes)}

    async def __call__(self, request) -> Any:
        from starlette.responses import JSONResponse

        try:
            body = await request.json()
        except ValueError as e:  # JSONDecodeError
            return JSONResponse({"error": f"the body is not JSON: {e}"}, status_code=400)
        try:
            feeds, wanted, request_id = protocol.decode_json(body)
            outs = await self.predict(feeds)
        except InputError as e:  # ProtocolError too
            return JSONResponse({"error": str(e)}, status_code=400)
        names = wanted or list(outs)
        unknown = sorted(set(names) - set(outs))
        if unknown:
            return JSONResponse({"error": f"unknown output(s) {unknown}; outputs are "
                                 f"{list(outs)}"}, status_code=400)
        return JSONResponse(protocol.encode_json(self.model.name, {n: outs[n] for n in names},
                                                 request_id))


def deployment(path: str, *, name: str | None = None, target: str = "llvm",
               max_batch_size: int = 32, batch_wait_timeout_s: float = 0.002,
               threads: int | None = None, **options: Any):
    """A Ray Serve application serving the model at `path`: pass it to `serve.run`.

    `max_batch_size` / `batch_wait_timeout_s` go to `@serve.batch`; every other keyword is a
    Ray Serve deployment option (autoscaling_config, num_replicas, ray_actor_options,
    max_ongoing_requests, name, ...), passed through unchanged."""
    options.setdefault("max_ongoing_requests", max(5, 2 * max_batch_size))
    return GraphcnnDeployment.options(**options).bind(
        path, name=name, target=target, max_batch_size=max_batch_size,
        batch_wait_timeout_s=batch_wait_timeout_s, threads=threads)


class Predictor:
    """A Ray Data batch predictor: `ds.map_batches(Predictor, fn_constructor_kwargs={"path":
    ...}, batch_size=N, concurrency=K)`; numpy batches in and out.

    Each input is read from the column of its name (`columns={"input": "image"}` renames; a
    one-input model with a one-column batch takes that column). The outputs are added as
    columns of their names; the batch's other columns (ids, labels) pass through. A batch of
    any size runs max_batch samples per native call."""

    def __init__(self, path: str, name: str | None = None, target: str = "llvm",
                 max_batch: int = 32, threads: int | None = None,
                 columns: dict[str, str] | None = None):
        self.model = ServedModel.from_path(path, name=name, target=target, max_batch=max_batch,
                                           **({"threads": threads} if threads else {}))
        self.columns = dict(columns or {})

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [n for n, _, _ in self.model.inputs]
        columns = {n: self.columns.get(n, n) for n in names}
        if len(names) == 1 and columns[names[0]] not in batch and len(batch) == 1:
            columns[names[0]] = next(iter(batch))
        missing = [c for c in columns.values() if c not in batch]
        if missing:
            raise InputError(f"model {self.model.name!r}: the batch has no column(s) {missing} "
                             f"(columns: {sorted(batch)}); map inputs with columns=")
        feeds = {n: np.ascontiguousarray(batch[c]) for n, c in columns.items()}
        outs = self.model.predict(feeds)
        rest = {c: v for c, v in batch.items() if c not in columns.values()}
        clash = sorted(set(rest) & set(outs))
        if clash:
            raise InputError(f"output(s) {clash} would overwrite columns of the same name")
        return {**rest, **outs}


__all__ = ["GraphcnnDeployment", "Predictor", "deployment"]
