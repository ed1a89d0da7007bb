"""Commit intent (goal, plan, confidence, agent, ...) as `Intent-<Key>: value` commit trailers."""
from __future__ import annotations

import json
import re

PREFIX = "Intent-"
_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*): (.*)$")


def trailer_key(key: str) -> str:
    return PREFIX + "-".join(part[:1].upper() + part[1:] for part in re.split(r"[_\s-]+", key) if part)


def message_with_intent(message: str, intent: dict[str, object] | None) -> str:
    message = message.rstrip("\n")
    if not intent:
        return message + "\n"
    lines = []
    for key, value in intent.items():
        text = " ".join(intent_text(value).split())  # trailers are one line each
        if text:
            lines.append(f"{trailer_key(key)}: {text}")
    return f"{message}\n\n" + "\n".join(lines) + "\n" if lines else message + "\n"


def intent_text(value: object) -> str:
    """An intent value as text: a string as it is, anything else as JSON writes it (true, 0.9, ["a"]), where
    Python's str() made Python's spelling of it ("True", "None") part of the commit message."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def split_intent(message: str) -> tuple[str, dict[str, str] | None]:
    """A message as message_with_intent wrote it, taken apart: the message, and the intent its last paragraph
    holds when every line of it is an intent trailer."""
    body, _, last = message.strip("\n").rpartition("\n\n")
    intent = intent_from_message(message)
    if not body or intent is None or len(intent) != len(last.splitlines()):
        return message.rstrip("\n"), intent
    return body, intent


def intent_from_message(message: str) -> dict[str, str] | None:
    paragraphs = message.strip("\n").split("\n\n")
    if len(paragraphs) < 2:
        return None
    intent = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line)
        if match and match.group(1).startswith(PREFIX):
            words = match.group(1)[len(PREFIX):].split("-")
            key = words[0].lower() + "".join(w.capitalize() for w in words[1:])
            intent[key] = match.group(2)
    return intent or None


def without_intent_trailers(message: str) -> tuple[str, list[str]]:
    """A message without the intent trailers of its last paragraph (other trailers stay), and those lines as they
    are written."""
    body, _, last = message.strip("\n").rpartition("\n\n")
    if not body:
        return message.strip("\n"), []
    intent, others = [], []
    for line in last.splitlines():
        match = _TRAILER.match(line)
        (intent if match and match.group(1).startswith(PREFIX) else others).append(line)
    if not intent:
        return message.strip("\n"), []
    return (body + "\n\n" + "\n".join(others) if others else body), intent
