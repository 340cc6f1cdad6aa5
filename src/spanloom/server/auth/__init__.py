"""Who may do what: API keys (one from SPANLOOM_API_KEY or many from a keys file), the dashboard's
login sessions, the middleware that checks both, and the per-project scope of a read key.

Nothing here imports ingest, the API or the pages: they import `scope` to apply a key's projects.
"""
