"""The smart-HTTP git WSGI application: routing, auth on every git URL, streaming to C git."""
from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import parse_qs

from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hooks.context import ChangeContext, RepoRef
from hooks.pipeline import run_effects
from hooks.push_outcome import found_in_place, now_in_place
from hooks.refs import RECEIVE_HIDE_REFS, SERVER_REFS, RefUpdate, hidden_ref_reasons
from storage import git_refs
from storage.db import Database
from storage.errors import is_storage_refusal
from storage.git_env import ALLOCATION_REFUSED, allocation_limit
from storage.key_format import blank_keys
from storage.keys import AUTHENTICATED, Principal, find_principal
from storage.models import Organization, Repository
from storage.push_scans import PushScans
from storage.object_checks import cosmetic_fsck_ignored
from storage.repo_store import RepoStore
from storage.settings import Settings

from . import heap
from .auth import credential_from_header
from .body import BodyError, BodyTooLarge, discard_rest, request_chunks
from .capabilities import CapabilityCache
from .git_process import GitProcess, RepositoryGone
from .hook_channel import HookChannel, hook_scripts_ready
from .pack_cache import PackCache
from .pack_prescan import UNPACK_LIMIT, diff_ahead, prescan_pushed_pack
from .pktline import FLUSH
from .protocol import NO_CACHE, advertisement_prefix, git_protocol, is_v2, text_response
from .push_report import PUSH_CERTIFICATE, PushCommands, ReportFilter, read_push_head
from .routing import GitRoute, match_git_route

log = logging.getLogger(__name__)

SERVICES = {"git-upload-pack": "upload-pack", "git-receive-pack": "receive-pack"}
UPLOAD_PACK_REQUEST_LIMIT = 256 * 1024 * 1024
WHOLE_BODY_LIMIT = 1024 * 1024  # bodies up to this size (most fetch negotiations, small pushes) are read whole
# what git or the API left of a body is read and dropped for this long once its answer is sent (discard_rest): a
# client that reads while it writes (the git CLI, curl) stops sending on the answer; one that writes all first
# (libgit2, JGit, urllib) needs the rest read, or the connection is reset under it before it reads the answer
UNREAD_BODY_SECONDS = 60
CHALLENGE = [("WWW-Authenticate", 'Basic realm="Driftstone", charset="UTF-8"')]


@dataclass
class GitHttpApp:
    db: Database
    settings: Settings
    store: RepoStore
    hooks_path: Path
    fallback: Callable
    pack_cache: PackCache = PackCache(None)
    capabilities: CapabilityCache = field(default_factory=CapabilityCache)

    def __call__(self, environ, start_response):
        connection = environ.get("gunicorn.socket")
        if connection is not None:  # a client that stops sending its body (or reading) frees its thread
            connection.settimeout(self.settings.request_idle_timeout)
        route = match_git_route(environ.get("PATH_INFO", ""))
        if route is None:
            return _then_rest_of_body_dropped(environ, self.fallback(environ, start_response))
        if environ.get("REQUEST_METHOD") == "HEAD":
            return _without_body(self._answer(route, environ, start_response))
        return _then_rest_of_body_dropped(environ, self._answer(route, environ, start_response))

    def _answer(self, route: GitRoute, environ, start_response):
        try:
            return self._handle(route, environ, start_response)
        except RepositoryGone:
            return text_response(start_response, "404 Not Found", "repository not found")
        except (OperationalError, PoolTimeout) as error:
            if is_storage_refusal(error):
                log.error("git request: the database's storage refused a write: %s", error)
                return text_response(start_response, "503 Service Unavailable",
                                     "the server could not write to its storage; try again later",
                                     [("Retry-After", "30")])
            log.warning("git request: database unavailable", exc_info=True)  # git retries nothing itself, but
            return text_response(start_response, "503 Service Unavailable",  # the user's next try may work
                                 "the server is busy; try again", [("Retry-After", "1")])
        except Exception:
            log.exception("git request failed")
            return text_response(start_response, "500 Internal Server Error", "internal error")

    def _handle(self, route: GitRoute, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        raw_key = credential_from_header(environ.get("HTTP_AUTHORIZATION"))
        if raw_key is None:
            return text_response(start_response, "401 Unauthorized", "authentication required", CHALLENGE)
        with self.db.connection() as connection:
            principal = find_principal(connection, raw_key)
            if principal is None:
                return text_response(start_response, "401 Unauthorized", "invalid credentials", CHALLENGE)
            environ[AUTHENTICATED] = True
            repo = find_repo(connection, principal, route) if route.endpoint != "invalid" else None
        if repo is None:
            return text_response(start_response, "404 Not Found", "repository not found")
        if route.endpoint == "dumb":
            return text_response(start_response, "404 Not Found", "the dumb HTTP protocol is not served; use smart HTTP")

        if route.endpoint == "info/refs":
            if method not in ("GET", "HEAD"):
                return text_response(start_response, "405 Method Not Allowed", "use GET", [("Allow", "GET, HEAD")])
            service = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get("service", [None])[0]
            if service is None:  # a dumb client's first request
                return text_response(start_response, "404 Not Found", "the dumb HTTP protocol is not served; use smart HTTP")
            if service not in SERVICES:  # as http-backend answers it
                return text_response(start_response, "403 Forbidden",
                                     f"unsupported service {blank_keys(service[:100])!r}")
        else:
            if method != "POST":
                return text_response(start_response, "405 Method Not Allowed", "use POST", [("Allow", "POST")])
            service = route.endpoint
            expected = f"application/x-{service}-request"
            if environ.get("CONTENT_TYPE", "").split(";")[0].strip() != expected:
                return text_response(start_response, "415 Unsupported Media Type", f"expected {expected}")

        if service == "git-receive-pack" and not principal.allows("agent"):
            return text_response(start_response, "403 Forbidden", "this key may not push (read-only scope)")

        repo_path = self.store.path_for(repo.id)
        protocol = git_protocol(environ.get("HTTP_GIT_PROTOCOL"))
        env = {"GIT_PROTOCOL": protocol} if protocol else {}
        if route.endpoint == "info/refs":
            if method == "HEAD":  # the headers a GET would have; no git is started for a body nobody reads
                start_response("200 OK", [("Content-Type", f"application/x-{service}-advertisement"), *NO_CACHE])
                return []
            return self._advertise(start_response, repo_path, service, protocol, env)
        if service == "git-upload-pack":
            return self._upload_pack(environ, start_response, repo_path, repo.id, env)
        ctx = ChangeContext(db=self.db, settings=self.settings, repo=repo, repo_path=repo_path, actor=principal)
        # the reflog's entries name the key that pushed (as http-backend names REMOTE_USER), not the server's account
        env.update(GIT_COMMITTER_NAME=principal.key_id, GIT_COMMITTER_EMAIL=f"{principal.key_id}@{principal.org_id}")
        return self._receive_pack(environ, start_response, ctx, env)

    def _advertise(self, start_response, repo_path, service, protocol, env):
        if service == "git-upload-pack" and is_v2(protocol):
            return self._advertise_v2(start_response, repo_path, protocol)
        hidden = _RECEIVE_HIDDEN if service == "git-receive-pack" else _UPLOAD_HIDDEN
        process = GitProcess(repo_path, [*hidden, SERVICES[service], "--stateless-rpc", "--advertise-refs", "."], env)
        process.close_input()
        headers = [("Content-Type", f"application/x-{service}-advertisement"), *NO_CACHE]
        return _respond(start_response, process, headers, prefix=advertisement_prefix(service, protocol))

    def _advertise_v2(self, start_response, repo_path, protocol):
        advertisement = self.capabilities.advertisement(repo_path, protocol)
        if advertisement is None:
            return text_response(start_response, "400 Bad Request", "error: malformed git request")
        start_response("200 OK", [("Content-Type", "application/x-git-upload-pack-advertisement"), *NO_CACHE,
                                  ("Content-Length", str(len(advertisement)))])
        return [advertisement]

    def _upload_pack(self, environ, start_response, repo_path, repo_id, env):
        try:
            body = _request_body(environ, UPLOAD_PACK_REQUEST_LIMIT)
        except BodyError as error:
            return _body_refused(start_response, error)
        headers = [("Content-Type", "application/x-git-upload-pack-result"), *NO_CACHE]
        if _is_probe(body):
            return _empty_result(start_response, headers)
        cache_args, cache_env = self.pack_cache.git_options(self.store.kept_packs, repo_path, repo_id, body)
        process = GitProcess(repo_path, [*cache_args, *_UPLOAD_HIDDEN, "upload-pack", "--stateless-rpc", "."],
                             {**env, **cache_env})
        process.feed(body)
        return _respond(start_response, process, headers)

    def _receive_pack(self, environ, start_response, ctx: ChangeContext, env):
        if not hook_scripts_ready(self.hooks_path):
            return text_response(start_response, "503 Service Unavailable", "error: push checks are unavailable")
        try:
            body = _request_body(environ, self.settings.max_push_size + 1024 * 1024)
        except BodyError as error:
            return _body_refused(start_response, error)
        headers = [("Content-Type", "application/x-git-receive-pack-result"), *NO_CACHE]
        if _is_probe(body):
            return _empty_result(start_response, headers)
        try:
            head, body = read_push_head(body)
        except BodyError as error:
            return text_response(start_response, "400 Bad Request", f"error: {error}")
        if head.first_line is not None and head.first_line.startswith(PUSH_CERTIFICATE):
            # git writes a certificate into the object store before any hook runs, unchecked and kept even when
            # the push is refused; none is asked for (no nonce is advertised), so none is taken
            return text_response(start_response, "400 Bad Request", "error: signed pushes are not accepted")
        if head.object_count is not None:
            env["GIT_ALLOC_LIMIT"] = str(allocation_limit(head.object_count, self.settings.max_object_size))
        commands = PushCommands()
        ctx = replace(ctx, push_scans=PushScans(sent_objects=head.object_count))
        channel = HookChannel.open(ctx, requested=commands.requested)
        args = ["-c", f"core.hooksPath={self.hooks_path}", "-c", f"receive.maxInputSize={self.settings.max_push_size}",
                "-c", f"receive.unpackLimit={UNPACK_LIMIT}", *_RECEIVE_HIDDEN, *_RECEIVE_FSCK,
                "receive-pack", "--stateless-rpc", "."]
        try:
            process = GitProcess(ctx.repo_path, args, {**env, **channel.child_env()},
                                 pass_fds=[channel.child_end.fileno()])
        except Exception:
            channel.start()
            channel.close()  # no git holds the other end: the hook thread meets its end at once
            raise
        channel.git_pid = process.proc.pid
        channel.start()
        process.feed(body, observe=commands.feed, then=lambda: prescan_pushed_pack(
            ctx.repo_path, process, ctx.push_scans, self.settings.max_object_size,
            on_found=lambda idx: diff_ahead(ctx, commands.requested(), idx)))
        channel.body_complete = lambda: process.input_complete(self.settings.request_idle_timeout)
        channel.atomic = lambda: commands.atomic

        def after(filter_: ReportFilter) -> bytes:
            channel.close()  # joins the hook thread: its verdict is final once git has exited
            # git's report says which refs moved; one it does not name (no report asked for, or one this server
            # cannot read) is read back from the repository, so no moved ref goes without its effects
            outcome = filter_.results() if commands.reports_status else {}
            if (problem := filter_.unpack_problem()) is not None:
                log.warning("push to %s refused by git: %s", ctx.repo_path, problem)
            unnamed = set(now_in_place(ctx.repo_path, [u for u in commands.updates if u.ref not in outcome]))
            applied = [u for u in commands.updates if (outcome[u.ref] is None if u.ref in outcome else u in unnamed)]
            reasons: dict[str, str | None] = {r.ref: r.reason for r in channel.rejections}
            landed = (found_in_place(ctx.repo_path, commands.updates, outcome, commands.atomic)
                      if channel.approved and not reasons and problem is None else [])
            if problem is not None and ALLOCATION_REFUSED in process.stderr_tail():  # git stopped at GIT_ALLOC_LIMIT
                reasons = {"*": f"an object in the pack would inflate past the {self.settings.max_object_size} "
                                "byte limit"}
            if "*" in reasons:  # the push as a whole was refused (its checks could not run): every ref says why
                reasons = {update.ref: reasons["*"] for update in commands.updates}
            hidden = hidden_ref_reasons(commands.updates)
            if reasons and "*" not in reasons:  # the verdict is all or nothing: say why a ref that passed was not
                refused = next(iter(reasons))  # applied either (a hidden one: why it may never be pushed)
                for update in commands.updates:
                    reasons.setdefault(update.ref, hidden.get(update.ref, f"not applied: {refused} was refused"))
            for ref, reason in hidden.items():
                reasons.setdefault(ref, reason)
            if applied and not channel.approved:
                reasons.update(_undo_unchecked(ctx.repo_path, applied))
                applied = []
            reasons.update({update.ref: None for update in landed})
            run_effects(replace(ctx, push_options=tuple(channel.push_options),
                                found_in_place=frozenset(update.ref for update in landed)), [*applied, *landed])
            channel.finish_change()
            return filter_.finish(reasons)

        def report() -> ReportFilter:
            return ReportFilter(commands.sideband, tuple(u.ref for u in commands.updates),
                                private_paths=_server_paths(ctx.repo_path, self.settings.data_dir))

        def closed() -> None:
            try:
                channel.close()
            finally:
                channel.finish_change(recorded=False)  # a no-op once the effects ran; else their rows may be behind

        return _respond(start_response, process, headers, report=report, after=after, on_close=closed)


def _server_paths(*paths: Path) -> tuple[str, ...]:
    """Each path as given and as the kernel resolves it: git names files either way in its messages."""
    return tuple({form for path in paths for form in (str(path), os.path.realpath(path))})


_RECEIVE_HIDDEN = [arg for prefix in RECEIVE_HIDE_REFS for arg in ("-c", f"receive.hideRefs={prefix}")]
_RECEIVE_FSCK = cosmetic_fsck_ignored("receive")
_UPLOAD_HIDDEN = ["-c", f"uploadpack.hideRefs={SERVER_REFS}"]


def _undo_unchecked(repo_path: Path, applied: list[RefUpdate]) -> dict[str, str]:
    """git moved refs that the checks did not approve: its hook went missing or was replaced (git runs none it
    cannot find, and a replaced one may ignore the verdict). Each ref is put back if nobody has moved it since."""
    log.error("receive-pack in %s moved %s without approval from the checks: undoing", repo_path,
              ", ".join(u.ref for u in applied))
    reasons = {}
    for update in sorted(applied, key=lambda u: not u.is_create):  # new refs first: a/b may stand where a was
        try:
            undone = git_refs.compare_and_swap(repo_path, update.ref, update.new, update.old)
        except Exception:
            log.exception("could not undo %s", update.ref)
            undone = False
        reasons[update.ref] = ("the push checks did not run: the change was undone" if undone
                               else "the push checks did not run, and the ref could not be put back")
    return reasons


_REPO_BY_SLUGS = (
    select(Repository.id, Repository.org_id, Repository.slug, Repository.default_branch)
    .join(Organization, Organization.id == Repository.org_id)
    .where(Organization.slug == bindparam("org"), Repository.slug == bindparam("repo"),
           Repository.deleted_at.is_(None))
)


def find_repo(connection, principal: Principal, route: GitRoute) -> RepoRef | None:
    """The live repository the URL names, if the key's organization owns it and the key may see it."""
    row = connection.execute(_REPO_BY_SLUGS, {"org": route.org, "repo": route.repo}).first()
    if row is None or row.org_id != principal.org_id or not principal.can_see_repo(row.id):
        return None
    return RepoRef(id=row.id, org_id=row.org_id, slug=row.slug, default_branch=row.default_branch)


def _request_body(environ, limit: int) -> Iterable[bytes]:
    """The body for git's stdin. One of known small length is read whole first, so a body that never arrives
    in full is refused before git acts on its beginning (a delete-only push needs nothing after its commands);
    larger ones are streamed, and a pack cut short fails in git."""
    if not _announces_body(environ):
        raise BodyError("empty request body")
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if length.isdigit() and int(length) > limit and not environ.get("HTTP_CONTENT_ENCODING"):
        raise BodyTooLarge(f"request body too large: more than {limit} bytes")
    if length.isdigit() and int(length) <= WHOLE_BODY_LIMIT:
        if not environ.get("HTTP_CONTENT_ENCODING"):
            return list(_streamed_body(environ, limit))
        # compressed, it is whole only once its trailer has come (git http-backend refuses a gzip body cut short
        # before answering, t5562): read whole while what it inflates to stays small
        return _whole_while_small(_streamed_body(environ, limit), WHOLE_BODY_LIMIT)
    return _streamed_body(environ, limit)


def _whole_while_small(chunks: Iterator[bytes], budget: int) -> Iterable[bytes]:
    """All of `chunks` as a list if they come to at most `budget` bytes, else those read so far and the rest."""
    read, size = [], 0
    for chunk in chunks:
        read.append(chunk)
        size += len(chunk)
        if size > budget:
            return itertools.chain(read, chunks)
    return read


def _body_refused(start_response, error: BodyError):
    status = "413 Content Too Large" if isinstance(error, BodyTooLarge) else "400 Bad Request"
    return text_response(start_response, status, f"error: {error}")


def _is_probe(body: Iterable[bytes]) -> bool:
    """git's client sends a lone flush packet before a request too large to resend (http.postBuffer), to learn
    whether the server answers; git's reply to it is always empty, so no git process is started for it."""
    return isinstance(body, list) and b"".join(body) == FLUSH


def _empty_result(start_response, headers):
    start_response("200 OK", [*headers, ("Content-Length", "0")])
    return []


def _streamed_body(environ, limit: int) -> Iterator[bytes]:
    try:
        yield from request_chunks(environ, limit)
    except BodyError as error:
        log.info("rejecting request body: %s", error)
        raise


def _respond(start_response, process: GitProcess, headers, prefix: bytes = b"", report=None, after=None,
             on_close=None):
    """Start the response on git's first output (so a request git refuses gets a 400, not an empty 200).

    With `report` (receive-pack), a client that goes away does not stop the push: git is left to finish,
    its report is drained and the effects still run, because the refs may already have moved.
    """

    def body() -> Iterator[bytes]:
        output = process.output()
        filter_ = None
        finished = False
        try:
            first = next(output, b"")
            # Only now: git has read the commands, so the request's capabilities (side-band) are known.
            filter_ = report() if report else None
            if not first:
                code = process.wait()
                if code != 0 or process.input_error is not None:
                    log.info("git exited %s without output: %s", code, process.stderr_tail(500))
                    finished = True
                    yield from text_response(start_response, "400 Bad Request", "error: malformed git request")
                    return
            start_response("200 OK", headers)
            if prefix:
                yield prefix
            for chunk in _chain(first, output):
                if filter_ is not None:
                    chunk = filter_.feed(chunk)
                if chunk:
                    yield chunk
            process.wait()
            finished = True
            if filter_ is not None:
                yield after(filter_)
        finally:
            try:
                if report is not None and not finished:
                    filter_ = filter_ or report()
                    # a reader of its own: the loop's was closed with the loop when the client went away, and git,
                    # its output unread, would wait forever on a full pipe (nothing it had sent was lost with it)
                    for chunk in process.output():
                        filter_.feed(chunk)
                    process.wait()
                    after(filter_)
            finally:  # whatever failed above: git is reaped, and the push's hook channel closed
                try:
                    process.cleanup()
                finally:
                    if on_close is not None:
                        on_close()
                heap.after_transfer(process.bytes_fed + process.bytes_out)

    return body()


def _then_rest_of_body_dropped(environ, answer: Iterable[bytes]) -> Iterable[bytes]:
    """Once the answer is sent whole (the WSGI server closes the body after its last chunk), what the handler
    left of the request body is read, so that a client still writing it hears the answer. Only for a request
    whose key or signed URL was accepted: anyone could hold a thread for a minute with a body nobody asked for."""
    if not _announces_body(environ):
        return answer
    return _ThenRead(answer, lambda: _drop_rest_if_accepted(environ))


def _announces_body(environ) -> bool:
    """A Content-Length other than 0, or chunked: HTTP says a request with neither has no body."""
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    return (bool(length) and length != "0") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _drop_rest_if_accepted(environ) -> None:
    if environ.get(AUTHENTICATED):
        discard_rest(environ, UNREAD_BODY_SECONDS)


class _ThenRead:
    """A response body that, once sent whole and closed, reads the rest of the request body (not for a client
    that went away in the middle: nobody is left to hear the answer)."""

    def __init__(self, chunks: Iterable[bytes], rest_of_body: Callable[[], object]):
        self.chunks, self.rest_of_body, self.sent = chunks, rest_of_body, False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        self.sent = True

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        if self.sent:
            self.rest_of_body()


def _without_body(answer: Iterable[bytes]) -> list[bytes]:
    """A HEAD request's answer: its status and headers, none of its body (WSGI servers complain of one)."""
    close = getattr(answer, "close", None)
    if close is not None:
        close()
    return []


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
