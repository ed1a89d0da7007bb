"""Request bodies as a stream of chunks: Content-Length or chunked (gunicorn de-chunks), gzip decoded."""
from __future__ import annotations

import time
import zlib
from typing import Iterator

CHUNK = 64 * 1024
DECODED_STEP = 1024 * 1024


class BodyError(ValueError):
    pass


class BodyTooLarge(BodyError):
    """More than the limit: announced by Content-Length (refused before any of it is read) or decoded."""


def _raw_chunks(environ) -> Iterator[bytes]:
    try:
        yield from _raw_chunks_of(environ["wsgi.input"], environ)
    except BodyError:
        raise
    except TimeoutError:  # the connection's idle timeout: the client stopped sending
        raise BodyError("the request body stopped arriving") from None
    except Exception as error:  # the WSGI server's reader refused the framing (gunicorn: a bad chunk, no more data)
        raise BodyError(f"malformed request body ({type(error).__name__})") from None


def _raw_chunks_of(stream, environ) -> Iterator[bytes]:
    length = environ.get("CONTENT_LENGTH") or ""
    if length.strip():
        try:
            remaining = int(length)
        except ValueError:
            raise BodyError("invalid Content-Length") from None
        if remaining < 0:
            raise BodyError("invalid Content-Length")
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                raise BodyError("request body ended early")
            remaining -= len(chunk)
            yield chunk
        return
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if environ.get("wsgi.input_terminated") or chunked:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                return
            yield chunk


def request_chunks(environ, limit: int) -> Iterator[bytes]:
    """Decoded body chunks; raises BodyError when malformed or when more than `limit` bytes decode.

    A compressed chunk is inflated at most DECODED_STEP bytes at a time and each piece handed on before the
    next is made, so a small request that inflates hugely costs one step of memory, not its whole output.
    """
    encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("", "identity"):
        decoder = None
    elif encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    else:
        raise BodyError(f"unsupported Content-Encoding {encoding!r}")
    total = 0
    for chunk in _raw_chunks(environ):
        pieces = [chunk] if decoder is None else _inflate(decoder, chunk)
        for piece in pieces:
            total += len(piece)
            if total > limit:
                raise BodyTooLarge("request body too large")
            if piece:
                yield piece
    if decoder is not None:
        try:
            tail = decoder.flush()
        except zlib.error:
            raise BodyError("invalid compressed body") from None
        total += len(tail)
        if total > limit:
            raise BodyTooLarge("request body too large")
        if tail:
            yield tail
        if not decoder.eof:
            raise BodyError("truncated compressed body")


def _inflate(decoder, data: bytes) -> Iterator[bytes]:
    try:
        piece = decoder.decompress(data, DECODED_STEP)
        yield piece
        while decoder.unconsumed_tail:
            yield decoder.decompress(decoder.unconsumed_tail, DECODED_STEP)
    except zlib.error:
        raise BodyError("invalid compressed body") from None


DRAIN_STALL_SECONDS = 5  # a client that sends nothing for this long while its body is drained is left


def discard_rest(environ, seconds: float) -> int:
    """Read what is left of the request body and drop it, for up to `seconds` and while it keeps coming; returns
    the bytes dropped.

    git stops reading a push past its limits and answers at once. Closed with the rest of the body unread, the
    connection is reset under the client, which is still writing it: libgit2 and JGit then report a broken pipe
    instead of git's answer (the git CLI reads while it writes; http-backend's web server reads every body whole
    before git starts)."""
    deadline = time.monotonic() + seconds
    dropped = 0
    connection = environ.get("gunicorn.socket")
    try:
        if connection is not None:
            connection.settimeout(DRAIN_STALL_SECONDS)
        while time.monotonic() < deadline:
            chunk = environ["wsgi.input"].read(CHUNK)
            if not chunk:
                break
            dropped += len(chunk)
    except Exception:  # the client went away, stopped sending, or broke the framing: nobody is left to answer
        pass
    return dropped
