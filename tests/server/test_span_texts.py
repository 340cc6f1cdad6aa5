"""The input/output attribute is stored once (span_texts.py): split off, then put back as it was."""

from __future__ import annotations

from spanloom.server.store.span_texts import restore_attributes, split_attributes


def _round_trip(attributes: dict, input_text: str | None, output_text: str | None) -> dict:
    split = split_attributes(attributes, input_text, output_text)
    moved = [
        (moved.key, moved.position, text) if moved else (None, None, None)
        for moved, text in ((split.moved_input, input_text), (split.moved_output, output_text))
    ]
    return restore_attributes(split.attributes, moved)


def test_the_texts_attributes_are_moved_and_put_back_in_place():
    question, answer = "what is the refund policy? " * 20, "thirty days. " * 50
    attributes = {"kind": "LLM", "llm.input_messages.0.message.content": question, "n": 1}
    attributes["llm.output_messages.0.message.content"] = answer
    attributes["session.id"] = "s1"
    original = dict(attributes)
    split = split_attributes(attributes, question, answer)
    assert split.attributes == {"kind": "LLM", "n": 1, "session.id": "s1"}
    assert (split.moved_input, split.moved_output) == (
        ("llm.input_messages.0.message.content", 1),
        ("llm.output_messages.0.message.content", 3),
    )
    assert attributes == original  # the caller's dict is left as it was
    assert list(_round_trip(attributes, question, answer).items()) == list(original.items())


def test_input_value_matches_by_equality_other_keys_only_by_identity():
    text = "".join(["an equal ", "but not identical text"])
    copy = "".join(["an equal but not ", "identical text"])
    assert text == copy and text is not copy
    attributes = {"other": copy, "input.value": copy, "output.value": "x"}
    split = split_attributes(attributes, text, None)
    assert split.moved_input == ("input.value", 1)
    assert split.moved_output is None
    assert list(_round_trip(attributes, text, None).items()) == list(attributes.items())


def test_one_attribute_holding_both_texts_is_moved_once():
    text = "the same text both ways " * 20
    # The first attribute holding the very text is each text's: here input.value for both, so
    # it moves as the input, and output.value stays where it is.
    attributes = {"a": 1, "input.value": text, "output.value": text}
    split = split_attributes(attributes, text, text)
    assert (split.moved_input, split.moved_output) == (("input.value", 1), None)
    assert split.attributes == {"a": 1, "output.value": text}
    assert list(_round_trip(attributes, text, text).items()) == list(attributes.items())


def test_texts_not_among_the_attributes_move_nothing():
    attributes = {"a": "x", "b": 2}
    split = split_attributes(attributes, "from messages", None)
    assert split == (attributes, None, None)
    assert split_attributes({}, None, None) == ({}, None, None)
