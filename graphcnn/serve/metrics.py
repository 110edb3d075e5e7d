"""The server's Prometheus metrics, in a registry of its own (one per app, so several servers in
one process, as in the tests, do not share counts).

    graphcnn_requests_total{model}                 inference requests received
    graphcnn_request_errors_total{model,code}      answered with an error, by HTTP status
    graphcnn_request_latency_seconds{model}        histogram: arrival to answer
    graphcnn_batch_size{model}                     histogram: samples per native call (padding
                                                   excluded; the compiled size is _padded_)
    graphcnn_padded_batch_size{model}              histogram: the compiled size that ran
    graphcnn_inference_seconds{model}              histogram: one native call
    graphcnn_queue_depth{model}                    requests waiting for a batch
"""
from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .model import batch_sizes

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, max_batch: int):
        self.registry = CollectorRegistry()
        sizes = tuple(float(b) for b in batch_sizes(max_batch))
        r = self.registry
        self.requests = Counter("graphcnn_requests", "inference requests received", ["model"],
                                registry=r)
        self.errors = Counter("graphcnn_request_errors", "inference requests answered with an "
                              "error, by HTTP status", ["model", "code"], registry=r)
        self.latency = Histogram("graphcnn_request_latency_seconds", "request arrival to "
                                 "answer", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("graphcnn_batch_size", "samples per native call",
                                    ["model"], buckets=sizes, registry=r)
        self.padded_size = Histogram("graphcnn_padded_batch_size", "compiled batch size of "
                                     "each native call", ["model"], buckets=sizes, registry=r)
        self.inference = Histogram("graphcnn_inference_seconds", "one native call", ["model"],
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("graphcnn_queue_depth", "requests waiting for a batch",
                                 ["model"], registry=r)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

