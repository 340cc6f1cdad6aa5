"""OTLP ingest: the HTTP route (route.py), body limits (body.py), decoding (decode.py), normalization."""
