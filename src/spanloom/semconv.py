"""Attribute names and span kinds shared by the SDK, the instrumentors and the server.

The names follow the public OpenInference / traceAI conventions plus the OpenTelemetry GenAI
keys, so spans written by spanloom read the same in any of those backends, and spans written
by their SDKs group the same way in spanloom. This module imports nothing from spanloom.
"""

from __future__ import annotations

from enum import Enum

# --- context attributes (also the OpenTelemetry context keys, see sdk/context.py) ---
SESSION_ID = "session.id"
# true on a span: its session has ended (the conversation is over; its session evaluators may run).
SESSION_ENDED = "session.ended"
USER_ID = "user.id"
METADATA = "metadata"
TAG_TAGS = "tag.tags"
LLM_PROMPT_TEMPLATE = "llm.prompt_template.template"
LLM_PROMPT_TEMPLATE_VERSION = "llm.prompt_template.version"
LLM_PROMPT_TEMPLATE_VARIABLES = "llm.prompt_template.variables"

# GenAI mirror of the session id, so GenAI-aware backends group conversations too.
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"

# --- span kind ---
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
GEN_AI_SPAN_KIND = "gen_ai.span.kind"
FI_SPAN_KIND = "fi.span.kind"  # older traceAI releases


class SpanKind(str, Enum):
    """What a span represents, as OpenInference names it."""

    LLM = "LLM"
    CHAIN = "CHAIN"
    AGENT = "AGENT"
    TOOL = "TOOL"
    EMBEDDING = "EMBEDDING"
    RETRIEVER = "RETRIEVER"
    RERANKER = "RERANKER"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


# --- inputs and outputs ---
INPUT_VALUE = "input.value"
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME_TYPE = "output.mime_type"
MIME_JSON = "application/json"
MIME_TEXT = "text/plain"

# --- LLM ---
LLM_PROVIDER = "llm.provider"
LLM_SYSTEM = "llm.system"
LLM_MODEL_NAME = "llm.model_name"
LLM_INVOCATION_PARAMETERS = "llm.invocation_parameters"
LLM_INPUT_MESSAGES = "llm.input_messages"
LLM_OUTPUT_MESSAGES = "llm.output_messages"
LLM_TOOLS = "llm.tools"
LLM_TOKEN_COUNT_PROMPT = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL = "llm.token_count.total"
LLM_TOKEN_COUNT_PROMPT_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
LLM_TOKEN_COUNT_COMPLETION_REASONING = "llm.token_count.completion_details.reasoning"
LLM_FINISH_REASON = "llm.finish_reason"

# values of llm.provider / llm.system / gen_ai.system
PROVIDER_OPENAI = "openai"
PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_GOOGLE = "google"
SYSTEM_GEMINI = "gemini"
GEN_AI_SYSTEM_GEMINI = "gcp.gemini"  # the OpenTelemetry GenAI value for the Gemini API

# suffixes under llm.input_messages.{i}. / llm.output_messages.{i}.
MESSAGE_ROLE = "message.role"
MESSAGE_CONTENT = "message.content"
MESSAGE_CONTENTS = "message.contents"
MESSAGE_NAME = "message.name"
MESSAGE_TOOL_CALLS = "message.tool_calls"
MESSAGE_TOOL_CALL_ID = "message.tool_call_id"
MESSAGE_CONTENT_TYPE = "message_content.type"
MESSAGE_CONTENT_TEXT = "message_content.text"
MESSAGE_CONTENT_IMAGE = "message_content.image.image.url"
TOOL_CALL_ID = "tool_call.id"
TOOL_CALL_FUNCTION_NAME = "tool_call.function.name"
TOOL_CALL_FUNCTION_ARGUMENTS = "tool_call.function.arguments"
TOOL_JSON_SCHEMA = "tool.json_schema"

# --- embeddings ---
EMBEDDING_MODEL_NAME = "embedding.model_name"
EMBEDDING_EMBEDDINGS = "embedding.embeddings"
EMBEDDING_TEXT = "embedding.text"
EMBEDDING_VECTOR = "embedding.vector"

# --- retrievers ---
RETRIEVAL_DOCUMENTS = "retrieval.documents"  # retrieval.documents.{i}.document.*
DOCUMENT_ID = "document.id"
DOCUMENT_CONTENT = "document.content"
DOCUMENT_METADATA = "document.metadata"
DOCUMENT_SCORE = "document.score"

# --- tools (the @tool decorator) ---
TOOL_NAME = "tool.name"
TOOL_DESCRIPTION = "tool.description"
TOOL_PARAMETERS = "tool.parameters"

# --- OpenTelemetry GenAI ---
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"

# --- evaluations (log_evaluation events) ---
EVALUATION_EVENT = "evaluation"
EVALUATION_NAME = "evaluation.name"
EVALUATION_SCORE = "evaluation.score"
EVALUATION_LABEL = "evaluation.label"
EVALUATION_EXPLANATION = "evaluation.explanation"

# --- resource ---
PROJECT_NAME = "project.name"

# The value a masked attribute takes.
REDACTED_VALUE = "__REDACTED__"

# --- aliases the server also reads (spans from other SDKs; see DESIGN.md) ---
LANGFUSE_SESSION_ID = "langfuse.session.id"
LANGFUSE_USER_ID = "langfuse.user.id"
LANGFUSE_TRACE_METADATA_PREFIX = "langfuse.trace.metadata."
LANGFUSE_TRACE_TAGS = "langfuse.trace.tags"
ENDUSER_ID = "enduser.id"
PLAIN_SESSION_ID = "session_id"
PLAIN_USER_ID = "user_id"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"  # older GenAI spelling
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"  # older GenAI spelling
GEN_AI_PROMPT_PREFIX = "gen_ai.prompt."  # OpenLLMetry: gen_ai.prompt.N.role / .content
GEN_AI_COMPLETION_PREFIX = "gen_ai.completion."  # OpenLLMetry: gen_ai.completion.N.role / .content
OPENINFERENCE_PROJECT_NAME = "openinference.project.name"
PLAIN_PROJECT_NAME = "project_name"
SERVICE_NAME = "service.name"
