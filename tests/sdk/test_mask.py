"""TraceConfig: masking by argument and by environment variable, redaction patterns."""

from __future__ import annotations

import pytest

from spanloom import REDACTED_VALUE, TraceConfig

IMAGE = "llm.input_messages.0.message.contents.1.message_content.image.image.url"
INPUT_TEXT = "llm.input_messages.0.message.content"
OUTPUT_TEXT = "llm.output_messages.0.message.content"
VECTOR = "embedding.embeddings.0.embedding.vector"


def test_default_records_everything():
    config = TraceConfig()
    assert config.is_noop
    assert config.mask("input.value", "hello") == "hello"
    assert config.mask(VECTOR, [0.1, 0.2]) == [0.1, 0.2]


@pytest.mark.parametrize(
    ("option", "hidden", "kept"),
    [
        ("hide_inputs", ["input.value", INPUT_TEXT, IMAGE], ["output.value", OUTPUT_TEXT]),
        ("hide_outputs", ["output.value", OUTPUT_TEXT], ["input.value", INPUT_TEXT]),
        ("hide_input_messages", [INPUT_TEXT, IMAGE], ["input.value", OUTPUT_TEXT]),
        ("hide_output_messages", [OUTPUT_TEXT], ["output.value", INPUT_TEXT]),
        ("hide_input_images", [IMAGE], [INPUT_TEXT]),
        ("hide_input_text", [INPUT_TEXT], [IMAGE, OUTPUT_TEXT]),
        ("hide_output_text", [OUTPUT_TEXT], [INPUT_TEXT]),
        ("hide_embedding_vectors", [VECTOR], ["embedding.embeddings.0.embedding.text"]),
    ],
)
def test_each_option_by_argument(option, hidden, kept):
    config = TraceConfig(**{option: True})
    for key in hidden:
        assert config.mask(key, "value") == REDACTED_VALUE, key
    for key in kept:
        assert config.mask(key, "value") == "value", key


def test_option_from_environment(monkeypatch):
    monkeypatch.setenv("SPANLOOM_HIDE_INPUTS", "true")
    monkeypatch.setenv("SPANLOOM_HIDE_OUTPUT_TEXT", "1")
    config = TraceConfig()
    assert config.hide_inputs and config.hide_output_text
    assert config.mask("input.value", "x") == REDACTED_VALUE
    assert config.mask(OUTPUT_TEXT, "x") == REDACTED_VALUE


def test_explicit_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("SPANLOOM_HIDE_INPUTS", "true")
    config = TraceConfig(hide_inputs=False)
    assert config.mask("input.value", "x") == "x"


def test_false_environment_values(monkeypatch):
    monkeypatch.setenv("SPANLOOM_HIDE_OUTPUTS", "false")
    assert TraceConfig().hide_outputs is False


def test_long_base64_images_are_redacted():
    config = TraceConfig(base64_image_max_length=100)
    short = "data:image/png;base64," + "A" * 10
    long = "data:image/png;base64," + "A" * 500
    assert config.mask(IMAGE, short) == short
    assert config.mask(IMAGE, long) == REDACTED_VALUE
    assert config.mask(IMAGE, "https://example.com/cat.png") == "https://example.com/cat.png"


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("email", "mail ann.lee+x@mail.example.org now", f"mail {REDACTED_VALUE} now"),
        ("phone", "call +1 415-555-0132 today", f"call {REDACTED_VALUE} today"),
        ("card", "card 4111 1111 1111 1111 ok", f"card {REDACTED_VALUE} ok"),
        ("api_key", "key sk-proj-abcdefghijklmnop1234 here", f"key {REDACTED_VALUE} here"),
        (r"order-\d+", "see order-991", f"see {REDACTED_VALUE}"),
    ],
)
def test_redaction_patterns(pattern, text, expected):
    config = TraceConfig(redact_patterns=[pattern])
    assert config.mask("output.value", text) == expected


def test_redaction_from_environment_and_in_lists(monkeypatch):
    monkeypatch.setenv("SPANLOOM_REDACT_PATTERNS", "email, card")
    config = TraceConfig()
    assert config.mask("tag.tags", ["a@b.io", "plain"]) == [REDACTED_VALUE, "plain"]


def test_identity_keys_are_never_redacted():
    config = TraceConfig(redact_patterns=["email"], hide_inputs=True)
    assert config.mask("user.id", "alice@example.com") == "alice@example.com"
    assert config.mask("session.id", "bob@example.com") == "bob@example.com"


def test_bad_user_pattern_fails_at_configuration():
    with pytest.raises(Exception, match=r"unterminated|missing"):
        TraceConfig(redact_patterns=["(unclosed"])


def test_mask_attributes_drops_hidden_mime_types():
    config = TraceConfig(hide_inputs=True)
    masked = config.mask_attributes({"input.value": "x", "input.mime_type": "text/plain", "other": 1})
    assert masked == {"input.value": REDACTED_VALUE, "other": 1}


@pytest.mark.parametrize("prefix", ["OPENINFERENCE_", "FI_"])
def test_openinference_and_traceai_variables_are_read(monkeypatch, prefix):
    monkeypatch.setenv(prefix + "HIDE_INPUTS", "true")
    monkeypatch.setenv(prefix + "HIDE_OUTPUT_MESSAGES", "1")
    monkeypatch.setenv(prefix + "BASE64_IMAGE_MAX_LENGTH", "100")
    config = TraceConfig()
    assert config.hide_inputs is True
    assert config.hide_output_messages is True
    assert config.hide_outputs is False
    assert config.base64_image_max_length == 100


def test_spanloom_variables_win_then_openinference_then_traceai(monkeypatch):
    monkeypatch.setenv("SPANLOOM_HIDE_INPUTS", "false")
    monkeypatch.setenv("OPENINFERENCE_HIDE_INPUTS", "true")
    monkeypatch.setenv("FI_HIDE_INPUTS", "true")
    monkeypatch.setenv("OPENINFERENCE_HIDE_OUTPUTS", "false")
    monkeypatch.setenv("FI_HIDE_OUTPUTS", "true")
    monkeypatch.setenv("SPANLOOM_BASE64_IMAGE_MAX_LENGTH", "10")
    monkeypatch.setenv("FI_BASE64_IMAGE_MAX_LENGTH", "20")
    config = TraceConfig()
    assert config.hide_inputs is False
    assert config.hide_outputs is False
    assert config.base64_image_max_length == 10
    assert TraceConfig(hide_inputs=True).hide_inputs is True  # an argument beats them all


def test_openinference_older_spelling_of_embedding_vectors(monkeypatch):
    monkeypatch.setenv("OPENINFERENCE_HIDE_EMBEDDINGS_VECTORS", "true")
    assert TraceConfig().hide_embedding_vectors is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Two addresses run together: the second one starts where the first one's match ends.
        ("a@b.com.c@d.org", f"{REDACTED_VALUE}{REDACTED_VALUE}"),
        ("x@y.io_z@w.org!", f"{REDACTED_VALUE}{REDACTED_VALUE}!"),
        # A local part past RFC 5321's 64 characters: its last 64 characters and the domain go.
        ("k" * 70 + "@example.com", "k" * 6 + REDACTED_VALUE),
    ],
)
def test_email_redaction_at_the_edges(text, expected):
    assert TraceConfig(redact_patterns=["email"]).redact(text) == expected


def test_builtin_redaction_of_hostile_text_cannot_stall_the_app():
    import threading

    # A 64 KB word, with and without an "@": the unbounded e-mail pattern took ~3 s on each (it
    # tried every start position to the end of the run). Now linear: well within the deadline,
    # which only a quadratic pattern misses.
    config = TraceConfig(redact_patterns=["email", "phone", "card", "api_key"])
    texts = ["a" * 65_536, "a@" + "a" * 65_536, "a." * 32_768 + "@x", "1-" * 32_768 + "@"]
    done = []
    worker = threading.Thread(target=lambda: done.extend(config.redact(text) for text in texts), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert len(done) == len(texts), "redaction of 64 KB texts took over 5 s"
    assert done[0] == texts[0]
