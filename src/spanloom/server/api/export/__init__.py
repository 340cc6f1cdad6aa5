"""Export of sessions: GET /api/sessions/export (formats, rows, the chat dataset)."""
