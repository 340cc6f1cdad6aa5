"""The spanloom SDK: context attributes, the session span processor, register() and the tracer."""
