"""Reading another server's refs (`git ls-remote`), fetching from it and pushing to it, under DESIGN.md's rules for
remote URLs: https only unless the operator allows http, no credentials in the URL, no other transport (ext::,
file://, ssh), no private, loopback or link-local address unless the operator allows them, no redirects, and the
address checked is the one git connects to (pinned with http.curloptResolve, so a name that resolves again
elsewhere changes nothing). A token reaches git through its environment, never its arguments."""
from __future__ import annotations

import base64
import ipaddress
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .git_env import GIT, clean_git_env
from .process_groups import kill_group
from .object_checks import cosmetic_fsck_ignored
from .public_addresses import is_public

LS_REMOTE_TIMEOUT = 15
FETCH_TIMEOUT = 300
LOW_SPEED_BYTES, LOW_SPEED_SECONDS = 1024, 30  # a remote sending less than this for that long is given up on
_MEASURE_EVERY = 0.1


class RemoteRefused(Exception):
    """The URL breaks a rule: nothing was sent to it."""


class RemoteFailed(Exception):
    def __init__(self, message: str, denied: bool = False, output: bytes = b"", unauthenticated: bool = False):
        super().__init__(message)
        self.denied = denied  # the server refused the credentials (or asked for some), or the access (403)
        self.unauthenticated = unauthenticated  # the credentials themselves: none, or not valid (401)
        self.output = output  # what git wrote to its standard output before it failed


class RemoteRejected(Exception):
    """The remote did not take a pushed ref: `behind`, it has commits the pushed one lacks; else its own reason."""

    def __init__(self, reason: str, behind: bool):
        super().__init__(reason)
        self.behind = behind


@dataclass(frozen=True)
class Remote:
    url: str
    host: str
    port: int
    address: str  # the one address git may connect to


def shown(url: str) -> str:
    """The URL as it may be repeated back: without the credentials someone put in it (in one that does not parse,
    all before its last `@`)."""
    try:
        parts = urlsplit(url)
        parts.port  # a port out of range raises only when read
    except ValueError:
        return _USERINFO.sub(r"\1***@", url, count=1)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()


_USERINFO = re.compile(r"^([^:/?#]*://).*@", re.DOTALL)  # up to the last @: a password may hold / ? # or @


def checked_remote(url: str, allow_http: bool = False, allow_private: bool = False) -> Remote:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RemoteRefused("not a URL git can use") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise RemoteRefused(f"only {' and '.join(schemes)} repository URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise RemoteRefused("credentials do not belong in the URL: give them as git_token")
    if not parts.hostname:
        raise RemoteRefused("the URL names no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RemoteRefused(f"the host {parts.hostname!r} could not be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    if not allow_private:
        inner = [str(a) for a in addresses if not is_public(a)]
        if inner:
            raise RemoteRefused(f"the host {parts.hostname!r} resolves to an address that is not public ({inner[0]})")
    return Remote(url=url, host=parts.hostname, port=port, address=str(addresses[0]))


def _transport(remote: Remote, token: str | None, allow_http: bool) -> tuple[list[str], dict[str, str]]:
    """git's options and environment for talking to `remote` under the rules above."""
    address = f"[{remote.address}]" if ":" in remote.address else remote.address
    options = ["-c", "http.followRedirects=false", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
               "-c", f"http.curloptResolve={remote.host}:{remote.port}:{address}", "-c", "credential.helper=",
               "-c", f"http.lowSpeedLimit={LOW_SPEED_BYTES}", "-c", f"http.lowSpeedTime={LOW_SPEED_SECONDS}"]
    if allow_http:
        options += ["-c", "protocol.http.allow=always"]
    extra = {"GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    if token:
        basic = _basic(token)
        extra.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                      "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"})
    return options, clean_git_env(extra)


def _run(args: list[str], env: dict[str, str], timeout: float, what: str, token: str | None = None,
         stop_when: Callable[[], bool] | None = None) -> bytes:
    """git and the transport helpers it starts (git-remote-https outlives a killed git and holds its pipes) as
    one process group, all killed at the deadline or when `stop_when()` says so (RemoteTooLarge). What git said
    is repeated without the token, should a server have echoed it."""
    deadline = time.monotonic() + timeout
    with subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as process:
        output = _drained(process.stdout, limit=None)
        errors = _drained(process.stderr, limit=8192)
        try:
            while not _ended(process):
                if stop_when is not None and stop_when():
                    raise RemoteTooLarge("stopped")
                if time.monotonic() > deadline:
                    raise RemoteFailed(f"the repository did not answer within {timeout:g} s")
        except BaseException:
            kill_group(process)  # git is still running: its group is still its own
            raise
        said = _without(token, errors().decode("utf-8", "replace").strip())  # git waited for its helpers
        if process.returncode != 0:
            unauthenticated = any(sign in said for sign in ("Authentication failed", "could not read Username",
                                                            " 401"))
            raise RemoteFailed(said.splitlines()[-1] if said else f"{what} failed",
                               unauthenticated or " 403" in said, output(), unauthenticated)
        return output()


def _without(token: str | None, text: str) -> str:
    """`text` from git as it may be repeated to whoever called: after a token was sent, without the remote's own
    words (which could quote it in any spelling) and without the token or its Basic form in any case."""
    if not token:
        return text
    lines = [REMOTE_WORDS_LEFT_OUT if line.startswith("remote:") or "remote error" in line.lower() else line
             for line in text.splitlines()]
    return re.sub("|".join(re.escape(secret) for secret in (_basic(token), token)), "***", "\n".join(lines),
                  flags=re.IGNORECASE)


REMOTE_WORDS_LEFT_OUT = "(what the remote said is not repeated: it was sent a token)"


def _basic(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def _ended(process: subprocess.Popen) -> bool:
    try:
        process.wait(_MEASURE_EVERY)
        return True
    except subprocess.TimeoutExpired:
        return False


def _drained(stream, limit: int | None) -> Callable[[], bytes]:
    """Read `stream` on a thread of its own (a full pipe would stop git); the returned call waits for its end
    (the group killed: its writers are gone) and gives what was read, the last `limit` bytes if given."""
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: stream.read(65536), b"")), daemon=True)
    reader.start()

    def result() -> bytes:
        reader.join()
        data = b"".join(chunks)
        return data[-limit:] if limit else data

    return result


def ls_remote(remote: Remote, refs: list[str], token: str | None = None, allow_http: bool = False) -> dict[str, str]:
    """ref -> sha of the `refs` the remote has (HEAD among them if asked)."""
    options, env = _transport(remote, token, allow_http)
    output = _run([GIT, *options, "ls-remote", "--end-of-options", remote.url, *refs], env, LS_REMOTE_TIMEOUT,
                  "git ls-remote", token)
    found = {}
    for line in output.decode("utf-8", "replace").splitlines():
        sha, _, ref = line.partition("\t")
        found[ref] = sha
    return found


class RemoteTooLarge(Exception):
    """What the remote sent passed the size it was allowed; the fetch was stopped."""


def fetch_ref(remote: Remote, repo_path: Path, ref: str, object_env: dict[str, str], max_bytes: int,
              measure: Callable[[], int], token: str | None = None, allow_http: bool = False) -> None:
    """The remote's `ref` and what it needs, into the object directory `object_env` names (a quarantine: see
    object_quarantine.py); no ref of the repository changes. git's fsck checks every object (fetch.fsckObjects,
    git's own severities; a pull checks them again as a push's, branch_remotes.py); `measure()` (the bytes arrived)
    passing `max_bytes` stops it (RemoteTooLarge)."""
    options, env = _transport(remote, token, allow_http)
    env.update(object_env)
    args = [GIT, "--git-dir", str(repo_path), *options, "-c", "fetch.fsckObjects=true",
            *cosmetic_fsck_ignored("fetch"), "fetch", "--quiet",
            "--no-tags", "--no-write-fetch-head", "--no-auto-gc", "--no-recurse-submodules", "--end-of-options",
            remote.url, ref]
    try:
        _run(args, env, FETCH_TIMEOUT, "git fetch", token, stop_when=lambda: measure() > max_bytes)
    except RemoteTooLarge:
        raise RemoteTooLarge(f"the remote branch brings more than the {max_bytes} byte limit") from None
    if measure() > max_bytes:
        raise RemoteTooLarge(f"the remote branch brings more than the {max_bytes} byte limit")


def push_ref(remote: Remote, repo_path: Path, commit: str, ref: str, token: str | None = None,
             allow_http: bool = False) -> None:
    """`commit` to the remote's `ref` as `git push` without --force (RemoteRejected when the remote does not take
    it); no hook of this repository runs and none of its refs changes."""
    options, env = _transport(remote, token, allow_http)
    args = [GIT, "--git-dir", str(repo_path), *options, "push", "--porcelain", "--no-verify", "--quiet",
            "--end-of-options", remote.url, f"{commit}:{ref}"]
    try:
        _run(args, env, FETCH_TIMEOUT, "git push", token)
    except RemoteFailed as failed:
        for line in failed.output.decode("utf-8", "replace").splitlines():
            flag, _, rest = line.partition("\t")
            if flag == "!":  # "!<TAB>from:to<TAB>[rejected] (fetch first)" or "[remote rejected] (its reason)"
                summary = _without(token, rest.partition("\t")[2])
                raise RemoteRejected(summary, behind=summary.startswith("[rejected]")) from None
        raise
