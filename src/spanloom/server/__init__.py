"""The spanloom trace server: OTLP ingest, an embedded store, and the JSON API.

Nothing here is imported by ``import spanloom``; the CLI loads it lazily for ``spanloom serve``.
"""
