"""One OTLP request body to a normalized batch: the CPU-bound part of ingest, with no state of the
server's, so that it runs the same in the server's process or in a decoding process
(decode_processes.py)."""

from __future__ import annotations

from spanloom.server.ingest.decode import decode_json, decode_protobuf
from spanloom.server.ingest.limits import IngestLimits
from spanloom.server.ingest.normalize import NormalizedBatch, normalize_request
from spanloom.server.ingest.value_budget import check_json_budget, check_protobuf_budget
from spanloom.server.pricing import PriceTable
from spanloom.server.store.base import SpanPreparer


def decode_request(
    body: bytes,
    as_json: bool,
    prices: PriceTable,
    limits: IngestLimits,
    preparer: SpanPreparer | None = None,
) -> NormalizedBatch:
    """Count the values (before decoding: value_budget.py), decode, normalize; with `preparer`,
    the batch's spans are what it built of them. Raises UndecodableBodyError, TooManySpansError
    or TooManyValuesError for a request refused whole."""
    if as_json:
        check_json_budget(body, limits.max_values_per_request)
    else:
        check_protobuf_budget(body, limits.max_values_per_request, limits.max_spans_per_request)
    request = decode_json(body) if as_json else decode_protobuf(body)
    batch = normalize_request(request, prices, limits)
    del request  # the decoded tree, freed before the rows are built beside the records
    if preparer is not None:
        batch.spans = preparer(batch.spans)
    return batch
