"""Auto-instrumentors for LLM provider SDKs (each provider SDK is an optional extra)."""
