"""The HTTP server: a Starlette app speaking the KServe v2 inference protocol for one model.

    GET  /v2                      server metadata
    GET  /v2/health/live          200 while the process serves
    GET  /v2/health/ready         200 once every batch size is compiled (503 before)
    GET  /v2/models/{name}        model metadata: inputs, outputs (batch dim -1), platform
    GET  /v2/models/{name}/ready
    POST /v2/models/{name}/infer  JSON, raw or .npy tensors (protocol.py)
    GET  /metrics                 Prometheus text exposition (metrics.py)

Every error is a JSON {"error": message}: 400 bad input, 404 unknown model, 413 a body over
the limit, 503 (with Retry-After) a full queue or a shutdown under way, 504 an answer later
than the per-request timeout, 500 a failure in the model itself. None of them stops the server.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graphcnn.errors import InputError
from graphcnn.version import __version__

from . import protocol
from .batcher import Batcher, Overloaded
from .metrics import Metrics
from .model import ServedModel

log = logging.getLogger("graphcnn.serve")


@dataclass
class ServeConfig:
    max_batch: int = 32
    max_delay_ms: float = 2.0
    adaptive_delay: bool = True  # wait the delay only while requests come concurrently
    queue_size: int = 256
    workers: int = 1
    timeout_s: float = 30.0
    max_body_bytes: int = 64 << 20
    warmup: bool = True  # compile every batch size at startup (ready reports when done)
    retry_after_s: int = 1


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def create_app(model: ServedModel, config: ServeConfig | None = None) -> Starlette:
    """The app serving `model`; its batcher starts and stops with the app's lifespan."""
    config = config or ServeConfig(max_batch=model.max_batch)
    metrics = Metrics(model.max_batch)
    batcher = Batcher(model, metrics, max_delay_s=config.max_delay_ms / 1000,
                      queue_size=config.queue_size, workers=config.workers,
                      max_batch=config.max_batch, adaptive=config.adaptive_delay)
    state = {"ready": not config.warmup, "warm_error": None}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await batcher.start()
        warming = asyncio.create_task(_warm()) if config.warmup else None
        yield
        if warming is not None and not warming.done():
            warming.cancel()
        await batcher.close()  # uvicorn has answered the open requests; this drains the rest
        log.info("graphcnn serve: %s drained and stopped", model.name)

    async def _warm() -> None:
        try:
            await batcher.warm()
            state["ready"] = True
        except Exception as e:  # noqa: BLE001  (the server stays up, not ready, says why)
            state["warm_error"] = f"{type(e).__name__}: {e}"
            log.error("graphcnn serve: compiling %s failed: %s", model.name, e)

    def check_name(request: Request) -> None:
        name = request.path_params["name"]
        if name != model.name:
            raise HTTPError(404, f"unknown model {name!r}; this server serves {model.name!r}")

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "graphcnn", "version": __version__, "extensions": []})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        if state["ready"]:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "error": state["warm_error"]}, status_code=503)

    async def model_metadata(request: Request) -> Response:
        return _guard(request, _metadata)

    async def model_ready(request: Request) -> Response:
        return _guard(request, lambda: JSONResponse(
            {"name": model.name, "ready": state["ready"]}, status_code=200 if state["ready"]
            else 503))

    def _metadata() -> Response:
        def tensors(items):
            return [{"name": n, "datatype": protocol.datatype_of(d), "shape": [-1, *s]}
                    for n, d, s in items]

        return JSONResponse({"name": model.name, "versions": ["1"], "platform": "graphcnn",
                             "target": model.target, "precision": model.precision,
                             "max_batch_size": batcher.max_batch,
                             "batch_sizes": list(model.sizes),
                             "inputs": tensors(model.inputs),
                             "outputs": tensors(model.outputs)})

    def _guard(request: Request, answer) -> Response:
        try:
            check_name(request)
            return answer()
        except HTTPError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status, headers=e.headers)

    async def infer(request: Request) -> Response:
        start = time.perf_counter()
        metrics.requests.labels(model.name).inc()
        try:
            check_name(request)
            return await _infer(request)
        except HTTPError as e:
            metrics.errors.labels(model.name, str(e.status)).inc()
            return JSONResponse({"error": str(e)}, status_code=e.status, headers=e.headers)
        except Exception as e:  # a bug or a failed native call: answered, the server goes on
            log.exception("graphcnn serve: %s failed", model.name)
            metrics.errors.labels(model.name, "500").inc()
            return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=500)
        finally:
            metrics.latency.labels(model.name).observe(time.perf_counter() - start)

    async def _infer(request: Request) -> Response:
        body = await _read_body(request, config.max_body_bytes)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        binary = ctype in (protocol.RAW_TYPE, *protocol.NPY_TYPES)
        try:
            if binary:  # np.load of up to max_body_bytes: off the event loop, as JSON is
                feeds = await asyncio.to_thread(protocol.decode_binary, body, ctype,
                                                request.headers, [n for n, _, _ in model.inputs])
                wanted, request_id = _binary_output(request), None
            else:
                feeds, wanted, request_id = await asyncio.to_thread(_decode_json, body)
            samples = model.samples(feeds)
        except InputError as e:
            raise HTTPError(400, str(e)) from None
        names = [n for n, _, _ in model.outputs]
        unknown = sorted(set(wanted or ()) - set(names))
        if unknown:
            raise HTTPError(400, f"unknown output(s) {unknown}; outputs are {names}")
        try:
            future = batcher.submit(feeds, samples)
        except Overloaded as e:
            raise HTTPError(503, str(e), {"Retry-After": str(config.retry_after_s)}) from None
        try:
            outs = await asyncio.wait_for(future, config.timeout_s)
        except asyncio.TimeoutError:  # TimeoutError's own class before Python 3.11
            raise HTTPError(504, f"no answer within {config.timeout_s} s (the queue holds "
                                 f"{batcher.depth} request(s))") from None
        outs = {n: outs[n] for n in (wanted or names)}
        if binary:
            data, headers = protocol.encode_binary(next(iter(outs.values())), ctype)
            headers["X-Output-Name"] = next(iter(outs))
            return Response(data, media_type=ctype, headers=headers)
        answer = await asyncio.to_thread(_encode_json, model.name, outs, request_id)
        return Response(answer, media_type="application/json")

    def _binary_output(request: Request) -> list[str] | None:
        name = request.headers.get("x-output-name")
        if name is not None:
            return [name]
        if len(model.outputs) != 1:
            raise HTTPError(400, f"the model has outputs {[n for n, _, _ in model.outputs]}: "
                                 "pick one with an X-Output-Name header")
        return None

    async def metrics_page(request: Request) -> Response:
        data, ctype = metrics.exposition()
        return Response(data, headers={"Content-Type": ctype})

    app = Starlette(routes=[
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/metrics", metrics_page),
    ], lifespan=lifespan)
    app.state.batcher, app.state.metrics, app.state.model = batcher, metrics, model
    return app


def _decode_json(body: bytes):
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise protocol.ProtocolError(f"the body is not JSON: {e}") from None
    return protocol.decode_json(parsed)


def _encode_json(model: str, outs: dict, request_id) -> bytes:
    """The answer as JSON; a NaN or infinite output is written as Python's json writes it
    (NaN, Infinity), which starlette's JSONResponse refuses with an error."""
    return json.dumps(protocol.encode_json(model, outs, request_id)).encode()


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the body is {declared} bytes, over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
