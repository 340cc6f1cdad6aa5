"""The JSON API under /api (OpenAPI at /openapi.json)."""
