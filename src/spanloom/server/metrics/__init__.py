"""Prometheus metrics of one app (`GET /metrics`): each app has a registry of its own, never
prometheus_client's global one, so tests and several apps in one process keep their counts apart."""
