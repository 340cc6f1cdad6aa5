"""Figures read when /metrics is scraped, from the parts that keep them: the store's size and
write queue, the evaluators' backlog, retention's deletions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from spanloom.server.store.base import RetentionResult, Store

logger = logging.getLogger(__name__)


class EvaluatorQueue(Protocol):
    @property
    def backlog(self) -> int: ...

    @property
    def dropped(self) -> int: ...


class RetentionTotals(Protocol):
    @property
    def deleted(self) -> RetentionResult: ...

    @property
    def passes(self) -> int: ...


class ServerState(Collector):
    def __init__(self, store: Store, evaluators: EvaluatorQueue, retention: RetentionTotals) -> None:
        self._store = store
        self._evaluators = evaluators
        self._retention = retention

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            stats = self._store.stats()
        except Exception:
            # A scrape still shows everything else when the store cannot say (a server down).
            logger.warning("spanloom: the store's figures could not be read", exc_info=True)
        else:
            yield GaugeMetricFamily(
                "spanloom_store_size_bytes", "Bytes the store takes on disk", value=stats.size_bytes
            )
            yield GaugeMetricFamily(
                "spanloom_store_queued_writes",
                "Write requests waiting for the store's writer (ingest answers 503 when it is full)",
                value=stats.queued_writes,
            )
            yield GaugeMetricFamily(
                "spanloom_store_unindexed_traces",
                "Traces waiting for the store's text search indexer (their texts are read instead)",
                value=stats.unindexed_traces,
            )
        yield GaugeMetricFamily(
            "spanloom_evaluator_backlog_spans",
            "Committed spans waiting for the server evaluators",
            value=self._evaluators.backlog,
        )
        yield CounterMetricFamily(
            "spanloom_evaluator_dropped_spans",
            "Spans the server evaluators skipped because their queue was full",
            value=self._evaluators.dropped,
        )
        deleted = self._retention.deleted
        by_kind = CounterMetricFamily(
            "spanloom_retention_deleted", "What retention deleted, by kind", labels=["kind"]
        )
        by_kind.add_metric(["sessions"], deleted.sessions)
        by_kind.add_metric(["traces"], deleted.traces)
        by_kind.add_metric(["spans"], deleted.spans)
        yield by_kind
        yield CounterMetricFamily(
            "spanloom_retention_passes", "Retention passes completed", value=self._retention.passes
        )
