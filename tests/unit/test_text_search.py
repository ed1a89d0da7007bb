"""The query syntax of dojo's Search API (docs.dojo.ninja/api/search), matched against text."""
import pytest

from control.services.text_search import match, parse
from storage.errors import Invalid

TEXT = "import { db } from './db';\nexport function handleAuth(req: Request) {\n  // error handling for OAuth\n}\n"


@pytest.mark.parametrize("query", [
    "handleAuth", "HANDLEAUTH", "error handling", '"error handling"', "error OR nothing", "nothing OR oauth",
    "error NOT test", "handle*", "NEAR(error handling, 5)", "export oauth", "req request",
])
def test_matches(query):
    assert match(parse(query), TEXT) is not None


@pytest.mark.parametrize("query", [
    '"handling error"', "error NOT oauth", "missing", "handle", "auth*", "error missing",
])
def test_does_not_match(query):
    assert match(parse(query), TEXT) is None


def test_snippet_rank_and_line():
    found = match(parse("handleAuth"), TEXT)
    assert found.snippet == ("...ort { db } from './db'; export function >>>>handleAuth<<<<(req: Request) { "
                             "// error handling for...")
    assert found.line == 2 and found.line_text == "export function handleAuth(req: Request) {"
    assert match(parse("error OR oauth"), TEXT).rank < found.rank  # two words matched rank before one


@pytest.mark.parametrize("query", ["NOT test", "a OR NOT b", "OR", "!!!"])
def test_a_query_with_nothing_to_look_for_is_refused(query):
    with pytest.raises(Invalid):
        parse(query)


def test_a_query_may_name_at_most_32_terms():
    assert parse(" ".join(f"w{i}" for i in range(32)))
    with pytest.raises(Invalid):
        parse(" OR ".join(f"w{i}" for i in range(33)))


@pytest.mark.parametrize("word, text", [("Straße", "die Straße"), ("straße", "die Straße"), ("İstanbul", "in İstanbul")])
def test_words_folding_to_other_letters_still_find_themselves(word, text):
    """casefold() made 'Straße' 'strasse' and 'İ' 'i' + a combining dot: the text never held those."""
    assert match(parse(word), text) is not None


@pytest.mark.parametrize("query", ["NEAR(foo bar", '"open phrase', "foo NOT"])
def test_a_query_fts_would_not_parse_is_refused(query):
    """They were read as other words (NEAR( as 'near foo'), or the dangling part dropped, silently."""
    with pytest.raises(Invalid):
        parse(query)
