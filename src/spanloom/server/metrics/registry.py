"""`Metrics`: the registry of one app and everything in it."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, Info, generate_latest

from spanloom.server.metrics.ingest import IngestMetrics
from spanloom.server.metrics.requests import RequestMetrics
from spanloom.server.metrics.state import EvaluatorQueue, RetentionTotals, ServerState
from spanloom.server.pricing import PriceSource
from spanloom.server.store.base import Store

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Spans and results per committed write: one small request alone up to the writer's batch limit.
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8192, 16384)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics(self.registry)
        self.ingest = IngestMetrics(self.registry)
        self.write_batches = Histogram(
            "spanloom_store_write_batch_records",
            "Spans and evaluation results per committed write of the store",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def price_table(self, source: PriceSource) -> None:
        """Say which price table priced the costs."""
        Info("spanloom_price_table", "The price table costs are computed with", registry=self.registry).info(
            {
                "source": "genai-prices",
                "version": source.version,
                "newest_price": source.newest_price.isoformat() if source.newest_price else "",
                "overridden": "true" if source.overrides is not None else "false",
            }
        )

    def watch(self, store: Store, evaluators: EvaluatorQueue, retention: RetentionTotals) -> None:
        """Read the store's, evaluators' and retention's figures at every scrape, and hear every
        committed write's size."""
        store.observe_writes(self.write_batches.observe)
        self.registry.register(ServerState(store, evaluators, retention))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in the registry."""
        return generate_latest(self.registry)
