"""Server-side evaluators: built-in judgements of stored spans, configured per project."""
