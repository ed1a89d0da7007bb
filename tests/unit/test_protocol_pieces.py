"""pkt-line framing, push report rewriting, ref-name rules, request routing and body decoding."""
import gzip
import io
import zlib

import pytest

from hooks.refs import NOT_PUSHABLE, RefUpdate, hidden_ref_reasons, pushable_ref_problem, ref_name_problem
from server.body import DECODED_STEP, BodyError, request_chunks
from server.pktline import PktReader, encode, sideband_frames
from server.protocol import advertisement_prefix, git_protocol
from server.push_report import PushCommands, ReportFilter, read_push_head
from server.routing import match_git_route
from tests.support import pkt

OLD, NEW = "a" * 40, "b" * 40


def test_pkt_reader_handles_any_chunking():
    stream = encode(b"hello\n") + b"0000" + encode(b"x" * 1000) + b"0001"
    for size in (1, 3, 7, len(stream)):
        reader, got = PktReader(), []
        for i in range(0, len(stream), size):
            got += [payload for _raw, payload in reader.feed(stream[i:i + size])]
        assert got == [b"hello\n", None, b"x" * 1000, None]


def test_push_commands_parsed_across_chunks():
    body = encode(f"{OLD} {NEW} refs/heads/main\0report-status side-band-64k\n".encode()) \
        + encode(f"{'0' * 40} {NEW} refs/heads/new\n".encode()) + b"0000PACK..."
    commands = PushCommands()
    for i in range(0, len(body), 5):
        commands.feed(body[i:i + 5])
    assert [u.ref for u in commands.updates] == ["refs/heads/main", "refs/heads/new"]
    assert commands.sideband and commands.done


def report(lines):
    return b"".join(encode(line.encode() + b"\n") for line in lines) + b"0000"


def test_report_rewrite_with_sideband_keeps_progress_and_names_reasons():
    inner = report(["unpack ok", "ng refs/heads/main pre-receive hook declined", "ok refs/heads/x"])
    stream = encode(b"\x02Resolving deltas\n") + sideband_frames(1, inner) + b"0000"
    filt = ReportFilter(sideband=True)
    passed = b"".join(filt.feed(stream[i:i + 4]) for i in range(0, len(stream), 4))
    assert passed == encode(b"\x02Resolving deltas\n")
    assert filt.results() == {"refs/heads/main": "pre-receive hook declined", "refs/heads/x": None}
    out = filt.finish({"refs/heads/main": "protected branch: deletion is not allowed"})
    lines = [p for _r, p in PktReader().feed(out)]
    assert lines[-1] is None
    inner_lines = [p for _r, p in PktReader().feed(b"".join(p[1:] for p in lines if p))]
    assert b"ng refs/heads/main protected branch: deletion is not allowed\n" in inner_lines


def test_report_without_sideband():
    filt = ReportFilter(sideband=False)
    filt.feed(report(["unpack ok", "ok refs/heads/main"]))
    assert filt.results() == {"refs/heads/main": None}
    assert filt.finish({}) == report(["unpack ok", "ok refs/heads/main"])


def test_a_refused_ref_holding_a_space_keeps_its_own_reason():
    filt = ReportFilter(sideband=False, refs=("refs/heads/a b", "refs/heads/a"))
    filt.feed(report(["unpack ok", "ng refs/heads/a b pre-receive hook declined", "ok refs/heads/a"]))
    assert filt.results() == {"refs/heads/a b": "pre-receive hook declined", "refs/heads/a": None}
    assert b"ng refs/heads/a b invalid ref name" in filt.finish({"refs/heads/a b": "invalid ref name"})


def _band_two(out: bytes) -> list[bytes]:
    return [p[1:] for _r, p in PktReader().feed(out) if p and p[:1] == b"\x02"]


def test_git_messages_lose_the_server_paths_and_the_lock_advice():
    """git wrote `Unable to create '/srv/data/repos/.../refs/heads/main.lock': File exists.` to the pusher, with
    the server's directory and advice to look for an editor opened by 'git commit' on the server's disk."""
    repo = "/srv/data/repos/05/repo_1.git"
    held = (b"error: cannot lock ref 'refs/heads/main': Unable to create '" + repo.encode() +
            b"/./refs/heads/main.lock': File exists.\n\nAnother git process seems to be running in this repository,"
            b" e.g.\nan editor opened by 'git commit'. Please make sure all processes\n")
    other = b"error: unable to write file " + repo.encode() + b"/objects/ab/cd: No space left on device\n"
    hooks = b"hint: the '/srv/data/git-hooks/pre-receive' hook was ignored\n"
    # a ref or a file path may spell the data directory: those stay as they are (review finding)
    names = b"refs/heads/srv/data/x: docs/srv/data/a.sql matches lock 'docs/srv/data/**'\n"
    stream = (encode(b"\x02" + held) + encode(b"\x02" + other) + encode(b"\x02" + hooks) + encode(b"\x02" + names) +
              sideband_frames(1, report(["unpack ok", "ng refs/heads/main failed to update ref"])) + b"0000")
    filt = ReportFilter(sideband=True, refs=("refs/heads/main",), private_paths=(repo, "/srv/data"))
    passed = b"".join(filt.feed(stream[i:i + 7]) for i in range(0, len(stream), 7))
    assert _band_two(passed) == [b"error: unable to write file objects/ab/cd: No space left on device\n",
                                 b"hint: the 'git-hooks/pre-receive' hook was ignored\n", names]
    assert _band_two(filt.finish({})) == [
        b"error: cannot lock ref 'refs/heads/main': another change to it is being written; try again\n"]


def test_a_lock_message_is_dropped_for_a_ref_reported_ok():
    """A push sent again after it landed is reported ok (its ref holds what was pushed); git's "cannot lock ref
    ... is at X but expected Y" reached the pusher above that ok."""
    message = b"error: cannot lock ref 'refs/heads/it's': is at 1111 but expected 2222\n"
    stream = (encode(b"\x02" + message) + sideband_frames(1, report(
        ["unpack ok", "ng refs/heads/it's failed to update ref"])) + b"0000")
    for reasons, shown in (({"refs/heads/it's": None}, []), ({}, [message])):
        filt = ReportFilter(sideband=True, refs=("refs/heads/it", "refs/heads/it's"))
        assert filt.feed(stream) == b""
        assert _band_two(filt.finish(reasons)) == shown


def test_the_leading_line_of_a_push_is_found_past_shallow_lines_and_nothing_is_consumed():
    body = pkt(b"shallow " + b"1" * 40 + b"\n") + pkt(b"push-cert\0report-status\n") + b"0000"
    chunks = [body[i:i + 5] for i in range(0, len(body), 5)]
    head, rest = read_push_head(iter(chunks))
    assert head.first_line == b"push-cert\0report-status\n" and b"".join(rest) == body
    assert read_push_head([b"0000"])[0].first_line is None
    assert read_push_head([b"zzzz"])[0].first_line is None


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_the_object_count_is_read_from_the_pack_header_past_commands_and_options(chunk):
    def command(caps: bytes) -> bytes:
        return pkt(b"shallow " + b"1" * 40 + b"\n") + pkt(f"{OLD} {NEW} refs/heads/main\0".encode() + caps)

    pack = b"PACK" + (2).to_bytes(4, "big") + (70_000).to_bytes(4, "big") + b"entries..."
    for options in (b"", pkt(b"ci.skip\n") + pkt(b"0000 looks like a flush\n") + b"0000"):
        body = command(b"report-status push-options" if options else b"report-status") + b"0000" + options + pack
        head, rest = read_push_head(iter([body[i:i + chunk] for i in range(0, len(body), chunk)]))
        assert head.object_count == 70_000 and b"".join(rest) == body
        assert head.first_line.startswith(f"{OLD} {NEW} refs/heads/main".encode())
    delete_only = pkt(f"{NEW} {'0' * 40} refs/heads/gone\0report-status".encode()) + b"0000"
    assert read_push_head([delete_only])[0].object_count is None
    assert read_push_head([command(b"report-status") + b"0000" + b"NOPE" + bytes(8)])[0].object_count is None
    assert read_push_head([b"zzzz"])[0].object_count is None


def test_capabilities_are_split_on_spaces_only_as_git_does():
    commands = PushCommands()
    commands.feed(pkt(b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/x\0report-status\x0bside-band-64k\n") + b"0000")
    assert not commands.sideband and commands.reports_status is False
    plain = PushCommands()
    plain.feed(pkt(b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/x\0report-status side-band\n") + b"0000")
    assert plain.reports_status and not plain.sideband


@pytest.mark.parametrize("ref", ["refs/heads/main", "refs/heads/feature/x", "refs/tags/v1.0"])
def test_good_ref_names(ref):
    assert ref_name_problem(ref) is None and pushable_ref_problem(ref) is None


@pytest.mark.parametrize("ref", ["refs/heads/-x", "refs/heads/a..b", "refs/heads/a.lock", "refs/heads/.hidden",
                                 "refs/heads/x/", "refs/heads//x", "refs/heads/a b", "refs/heads/a~1",
                                 "refs/heads/a^", "refs/heads/a:b", "refs/heads/a?", "refs/heads/a*",
                                 "refs/heads/a[", "refs/heads/a\\b", "refs/heads/a@{1}", "refs/heads/x.",
                                 "main", "@", "refs/heads/\x01", "refs/heads/" + "x" * 2000])
def test_bad_ref_names(ref):
    assert ref_name_problem(ref) is not None


def test_pushable_namespaces():
    assert pushable_ref_problem("refs/pull/1/head") is not None
    assert pushable_ref_problem("refs/notes/commits") is None


def test_hidden_refs_get_the_namespace_reason_and_bad_names_keep_their_own():
    updates = [RefUpdate(OLD, NEW, ref) for ref in ("refs/pull/1/head", "refs/heads/ok", "refs/heads/a..b")]
    assert hidden_ref_reasons(updates) == {"refs/pull/1/head": NOT_PUSHABLE}


@pytest.mark.parametrize("path,expected", [
    ("/acme/repo.git/info/refs", ("acme", "repo", "info/refs")),
    ("/acme/repo/git-upload-pack", ("acme", "repo", "git-upload-pack")),
    ("/ACME/Repo.GIT/info/refs", ("acme", "repo", "info/refs")),
    ("/acme/repo.Git/git-receive-pack", ("acme", "repo", "git-receive-pack")),
    ("/acme/repo.git/objects/info/packs", ("acme", "repo", "dumb")),
    ("/acme/../info/refs", ("", "", "invalid")),
    ("/acme//repo.git//info/refs", ("acme", "repo", "info/refs")),  # slashes merged, as web servers do
    ("//acme/repo.git/git-upload-pack", ("acme", "repo", "git-upload-pack")),
    ("/v1//repos/x/info/refs", None),
    ("/v1/repos/x/branches", None),
    ("/api/repos/o/n/workspaces/w/files/info/refs", None),
])
def test_git_routes(path, expected):
    route = match_git_route(path)
    assert (route and (route.org, route.repo, route.endpoint)) == expected


def test_git_protocol_sanitised():
    assert git_protocol("version=2") == "version=2"
    assert git_protocol("version=2:$(id)") == "version=2"
    assert git_protocol("") is None
    assert advertisement_prefix("git-upload-pack", "version=2") == b""
    assert advertisement_prefix("git-upload-pack", None).startswith(b"001e# service=git-upload-pack\n0000")


def environ(body: bytes, **extra):
    return {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), **extra}


def test_body_gzip_and_limits():
    data = b"0032want " + b"a" * 40 + b"\n0000"
    assert b"".join(request_chunks(environ(gzip.compress(data), HTTP_CONTENT_ENCODING="gzip"), 1 << 20)) == data
    with pytest.raises(BodyError):
        list(request_chunks(environ(gzip.compress(b"0" * 5000), HTTP_CONTENT_ENCODING="gzip"), 4096))
    with pytest.raises(BodyError):
        list(request_chunks(environ(b"x" * 10), 5))
    with pytest.raises(BodyError):
        list(request_chunks(environ(b"junk", HTTP_CONTENT_ENCODING="gzip"), 1 << 20))
    with pytest.raises(BodyError):
        list(request_chunks({"wsgi.input": io.BytesIO(b"abc"), "CONTENT_LENGTH": "10"}, 100))


def test_chunked_body_reads_to_end():
    env = {"wsgi.input": io.BytesIO(b"abc" * 1000), "HTTP_TRANSFER_ENCODING": "chunked"}
    assert b"".join(request_chunks(env, 1 << 20)) == b"abc" * 1000


def test_a_compressed_body_is_inflated_a_step_at_a_time():
    """400 MiB of zeros in a ~400 KiB gzip body: no piece handed on is bigger than one step, so a request
    costs a step of memory however far it inflates; past the limit it is refused."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"".join(compressor.compress(b"\0" * (1 << 20)) for _ in range(400)) + compressor.flush()
    assert len(body) < 1 << 20
    sizes = [len(piece) for piece in request_chunks(environ(body, HTTP_CONTENT_ENCODING="gzip"), 1 << 40)]
    assert sum(sizes) == 400 << 20 and max(sizes) <= DECODED_STEP
    with pytest.raises(BodyError, match="too large"):
        for _ in request_chunks(environ(body, HTTP_CONTENT_ENCODING="gzip"), 64 << 20):
            pass
