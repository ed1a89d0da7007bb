"""Sealed secrets (storage/secret_box.py) and the rule that a workspace's token goes only to the repository it was
kept for (control/services/remote_credentials.py)."""
from __future__ import annotations

import pytest

from control.services import remote_credentials
from storage import secret_box
from storage.errors import BadRequest
from storage.models import Repository

TOKEN = "ghp_" + "A1b2" * 9


def test_a_sealed_secret_opens_only_with_its_key_and_purpose_and_unaltered():
    sealed = secret_box.seal("server-key", "remote", TOKEN)
    assert TOKEN not in sealed and "ghp_" not in sealed
    assert secret_box.opened("server-key", "remote", sealed) == TOKEN
    assert secret_box.seal("server-key", "remote", TOKEN) != sealed  # a fresh IV each time
    assert secret_box.opened("another-key", "remote", sealed) is None
    assert secret_box.opened("server-key", "webhook", sealed) is None
    flipped = sealed[:40] + ("A" if sealed[40] != "A" else "B") + sealed[41:]
    assert secret_box.opened("server-key", "remote", flipped) is None
    for garbage in ("", "not a token", "\u00e9\u00e9", "gAAAA" + "=" * 10):
        assert secret_box.opened("server-key", "remote", garbage) is None


def kept(url: str, token: str = TOKEN) -> Repository:
    repo = Repository(upstream_url=url)
    remote_credentials.keep("k", repo, token)
    return repo


def test_a_token_goes_only_to_the_repository_it_was_kept_for():
    repo = kept("https://github.com/acme/widgets.git")
    assert remote_credentials.token_for("k", repo) == TOKEN
    for same in ("https://GitHub.com:443/acme/widgets", "https://github.com/acme/widgets/",
                 "https://github.com/acme/widgets.git/"):
        assert remote_credentials.token_for("k", repo, same) == TOKEN, same
    for elsewhere in ("https://github.com/acme/other.git", "https://github.com/acme/widgets.git/../other",
                      "https://github.com/acme/Widgets.git", "https://github.com.evil.example/acme/widgets.git",
                      "http://github.com/acme/widgets.git", "https://github.com:8443/acme/widgets.git",
                      "https://evil@github.example/acme/widgets.git", "ssh://github.com/acme/widgets.git", "not a url"):
        assert remote_credentials.token_for("k", repo, elsewhere) is None, elsewhere
    assert remote_credentials.token_for("rotated secret key", repo) is None


def test_moving_the_url_to_another_repository_forgets_the_token_and_another_spelling_keeps_it():
    repo = kept("https://github.com/acme/widgets.git")
    previous, repo.upstream_url = repo.upstream_url, "https://GITHUB.com/acme/widgets"
    remote_credentials.follow_url(repo, previous)
    assert remote_credentials.token_for("k", repo) == TOKEN
    previous, repo.upstream_url = repo.upstream_url, "https://github.com/acme/private-other.git"
    remote_credentials.follow_url(repo, previous)
    assert not remote_credentials.configured(repo)


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak", "tab\there", "caf\u00e9", "x" * 20_001])
def test_tokens_that_cannot_be_one_are_refused(token):
    with pytest.raises(BadRequest):
        remote_credentials.checked_token(token)


def test_settings_say_replace_forget_or_keep():
    change = remote_credentials.token_change
    assert change({"credentials": {"git_token": TOKEN}}) == TOKEN
    assert change({"credentials": {"git_token": ""}}) is False
    for keep in (None, {}, {"credentials": None}, {"credentials": {}}, {"credentials": {"git_token": None}},
                 {"credentials": {"git_token": remote_credentials.REDACTED}}):
        assert change(keep) is None, keep
    for wrong in ({"credentials": {"git_token": 12}}, {"credentials": "tok"}, {"credentials": [{"git_token": "t"}]}):
        with pytest.raises(BadRequest):
            change(wrong)
    for unusable in (None, "git://github.com/acme/widgets.git", "ssh://git@github.com/acme/widgets.git"):
        with pytest.raises(BadRequest):
            remote_credentials.keep("k", Repository(upstream_url=unusable), TOKEN)
