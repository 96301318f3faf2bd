"""Prometheus metrics of one app instance (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "artefact_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "artefact_http_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.search_stage = Histogram(
            "artefact_search_stage_seconds", "Search latency by stage", ["stage"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.vectors = Gauge("artefact_index_vectors", "Vectors in the index", registry=self.registry)
        self.objects = Gauge("artefact_index_objects", "Objects in the catalogue", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
