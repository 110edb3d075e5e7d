"""Serving compiled models over HTTP (KServe v2 protocol, dynamic batching, Prometheus metrics)
and on Ray (graphcnn.ray). Needs the `serve` extra: pip install 'graphcnn[serve]'.

    graphcnn serve model.onnx --name resnet --port 8000 --max-batch 32 --max-delay-ms 2

See docs/serving.md. `serve()` is the command's body; `create_app` gives the Starlette app for
an ASGI server of your own.
"""
from __future__ import annotations

import copy

from graphcnn.errors import GraphcnnError

from .model import ServedModel, batch_sizes

EXTRA = "pip install 'graphcnn[serve]'"


def require(*modules: str) -> None:
    """A typed error naming the extra when one of its packages is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise GraphcnnError(f"serving needs {', '.join(missing)}: {EXTRA}")


def create_app(model: ServedModel, config=None):
    require("starlette", "prometheus_client")
    from .app import create_app as _create_app

    return _create_app(model, config)


def serve(path: str, name: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          target: str = "llvm", threads: int | None = None, log_level: str = "info",
          precision: str = "fp32", **config) -> None:
    """Load the model at `path` (.onnx, DSL .py or saved .gcm) and serve it until SIGINT/SIGTERM,
    which stops taking connections and answers every request already received."""
    require("uvicorn", "starlette", "prometheus_client")
    import uvicorn

    from .app import ServeConfig

    cfg = ServeConfig(**config)
    options = {"threads": threads} if threads else {}
    if precision != "fp32":  # gc.compile's precision (a saved model keeps its own)
        options["precision"] = precision
    model = ServedModel.from_path(path, name=name, target=target, max_batch=cfg.max_batch,
                                  **options)
    # the server's own log lines (startup compiles, drain) beside uvicorn's, in its format
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["graphcnn.serve"] = {"handlers": ["default"], "level": "INFO",
                                               "propagate": False}
    app = create_app(model, cfg)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            # on the signal, not after uvicorn's wait for open requests: the batch being
            # gathered and the queued requests run at once instead of waiting out the delay
            app.state.batcher.begin_close()
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=log_config,
                          timeout_graceful_shutdown=max(30, int(cfg.timeout_s) + 5))).run()


__all__ = ["EXTRA", "ServedModel", "batch_sizes", "create_app", "require", "serve"]
