"""Sample conversations for `spanloom demo`, and the span shapes a benchmark can reuse:
conversations.py builds a believable day of data for a seed (texts from corpus.py), sender.py
traces it through the real SDK into a running server, as an app would."""

from spanloom.demo.conversations import EVALUATION, Conversation, Turn, build_conversations
from spanloom.demo.corpus import FRUSTRATED
from spanloom.demo.sender import llm_span_attributes, send_with_sdk

__all__ = [
    "EVALUATION",
    "FRUSTRATED",
    "Conversation",
    "Turn",
    "build_conversations",
    "llm_span_attributes",
    "send_with_sdk",
]
