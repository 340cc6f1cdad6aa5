"""Auto-instrumentors for LLM provider SDKs (each provider SDK is an optional extra).

``spanloom.instrumentation.openai.OpenAIInstrumentor`` and
``spanloom.instrumentation.anthropic.AnthropicInstrumentor`` patch the SDK's resource methods
by hand (no wrapt); importing them never imports the SDK. What both share lives here, once:

- ``_instrumentor``: instrument()/uninstrument(), the patch registry, config resolution;
- ``_span``: the span of one call (started bare, its request and response attributes written
  once at the end), the only place the "never break the host" rule is applied to a call;
- ``_streams``: hooks on the SDK's own stream object, so the span ends when the stream is
  exhausted, closed or collected;
- ``_raw``: ``with_raw_response`` / ``with_streaming_response`` results, recorded like the
  plain call's (parsed when that needs no I/O, else when the caller parses or closes);
- ``_messages``: flattening messages, tools and request parameters into attributes;
- ``_wrappers``: the sync/async functions installed in place of the SDK's methods.

Each provider package holds only what is its own: which methods to patch (``_wrappers``), pure
attribute builders (``_attributes``) and stream accumulators (``_stream``).
"""
