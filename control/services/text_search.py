"""Full-text queries over file contents, in the syntax of dojo's Search API (SQLite FTS5's): words that must all
appear, "exact phrases", OR between alternatives, NOT before an excluded term, `auth*` for a prefix. Words are
runs of letters and digits compared case-insensitively; NEAR(...) is read as its words all appearing.

A match carries a rank (lower is better, as FTS5's bm25: minus the number of matching words) and a snippet
with the first match between >>>> and <<<<.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from storage.errors import Invalid

_WORD = re.compile(r"[^\W_]+")
_ITEM = re.compile(r'"([^"]*)"|(\S+)')
_NEAR = re.compile(r"NEAR\(([^)]*?)(?:,\s*\d+)?\)")
SNIPPET_CONTEXT = 40
MAX_TERMS = 32  # each term is one pass over every candidate file


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # one word, or a phrase's words in order, as the query spells them
    prefix: bool = False  # the last word is a prefix (auth*)

    @cached_property
    def pattern(self) -> re.Pattern:
        """The words as whole words, separated by anything but letters and digits (a regex: C speed)."""
        body = r"[\W_]+".join(re.escape(word) for word in self.words) + (r"[^\W_]*" if self.prefix else "")
        return re.compile(rf"(?<![^\W_]){body}(?![^\W_])", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    groups: tuple[tuple[tuple[bool, Term], ...], ...]  # alternatives (OR) of terms that must all hold; True: NOT

    @property
    def fragments(self) -> list[str]:
        """Literal text each matching file must contain one of (to find candidates with git grep)."""
        return sorted({term.words[0] for group in self.groups for negated, term in group if not negated})


@dataclass(frozen=True)
class Match:
    rank: float
    snippet: str
    line: int
    line_text: str


def parse(text: str) -> Query:
    text = _NEAR.sub(r" \1 ", text)
    if "NEAR(" in text or text.count('"') % 2:
        raise _syntax_error("an unclosed NEAR( or quote")
    groups: list[list[tuple[bool, Term]]] = [[]]
    negate = False
    for phrase, item in _ITEM.findall(text):
        if item in ("OR", "AND", "NOT"):
            if item == "OR":
                groups.append([])
            negate = item == "NOT"
            continue
        words = tuple(_WORD.findall(phrase if phrase else item))  # as typed: the regex ignores case (casefold
        # would make 'Straße' 'strasse', which neither git grep nor the text then holds)
        if not words:
            continue
        groups[-1].append((negate, Term(words, prefix=bool(item) and item.endswith("*"))))
        negate = False
    if negate:
        raise _syntax_error("NOT with nothing after it")
    if sum(len(group) for group in groups) > MAX_TERMS:
        raise Invalid(f"a search may name at most {MAX_TERMS} words or phrases",
                      {"fields": [{"loc": "q", "msg": "too many terms"}]})
    if any(not any(not negated for negated, _ in group) for group in groups):
        raise Invalid("a search needs a word to look for in each alternative (NOT alone matches nothing)",
                      {"fields": [{"loc": "q", "msg": "no word to search for"}]})
    return Query(tuple(tuple(group) for group in groups))


def _syntax_error(what: str) -> Invalid:
    return Invalid(f"the search has {what}", {"fields": [{"loc": "q", "msg": "syntax"}]})


def match(query: Query, text: str) -> Match | None:
    spans_of = {term: [m.span() for m in term.pattern.finditer(text)] for group in query.groups for _, term in group}
    matched = [group for group in query.groups
               if all(bool(spans_of[term]) != negated for negated, term in group)]
    if not matched:
        return None
    spans = [span for group in matched for negated, term in group if not negated for span in spans_of[term]]
    start, end = min(spans)
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_text = text[line_start:line_end if line_end >= 0 else len(text)]
    return Match(rank=-float(len(set(spans))), snippet=_snippet(text, start, end),
                 line=text.count("\n", 0, start) + 1, line_text=line_text[:500])


def _snippet(text: str, start: int, end: int) -> str:
    before = max(0, start - SNIPPET_CONTEXT)
    after = min(len(text), end + SNIPPET_CONTEXT)
    body = f"{text[before:start]}>>>>{text[start:end]}<<<<{text[end:after]}"
    return ("..." if before else "") + " ".join(body.split()) + ("..." if after < len(text) else "")
