"""Intent trailers: written by message_with_intent, read back whole or taken apart from the message."""
from storage.intent import message_with_intent, split_intent


def test_a_message_and_its_intent_come_apart_as_they_were_put_together():
    written = message_with_intent("Fix the parser\n\nIt dropped the last line.", {"goal": "parse", "confidence": 0.9})
    assert split_intent(written) == ("Fix the parser\n\nIt dropped the last line.",
                                     {"goal": "parse", "confidence": "0.9"})


def test_a_last_paragraph_that_is_not_all_intent_stays_in_the_message():
    message = "Fix\n\nIntent-Goal: parse\nSigned-off-by: A <a@x>\n"
    assert split_intent(message) == ("Fix\n\nIntent-Goal: parse\nSigned-off-by: A <a@x>", {"goal": "parse"})
    assert split_intent("Intent-Goal: only a subject\n") == ("Intent-Goal: only a subject", None)
    assert split_intent("plain\n") == ("plain", None)
