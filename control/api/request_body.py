"""A request body is either all there or refused: WSGI middleware for the control app.

gunicorn hands the app a body that simply ends when the client goes away, and marks it `wsgi.input_terminated`,
so Werkzeug does not count it against Content-Length: a cut-off PUT would be stored as the whole file. This
stream counts, and turns an early end or a broken chunked framing into a 400 (Werkzeug's ClientDisconnected).
The idle timeout's TimeoutError passes through (the app answers it with a 408).
"""
from __future__ import annotations

from werkzeug.exceptions import ClientDisconnected


class CompleteBody:
    def __init__(self, stream, length: int | None):
        self._stream = stream
        self._length = length
        self._read = 0

    def read(self, size: int | None = -1) -> bytes:
        """Like a file: up to `size` bytes, fewer only at the end of the body (which must be Content-Length)."""
        whole = size is None or size < 0
        if whole:
            data = self._call(self._stream.read)
        else:
            pieces, wanted = [], size
            while wanted > 0 and (piece := self._call(self._stream.read, wanted)):
                pieces.append(piece)
                wanted -= len(piece)
            data = b"".join(pieces)
        self._read += len(data)
        at_end = whole or len(data) < size
        if at_end and self._length is not None and self._read < self._length:
            raise ClientDisconnected("the request body ended before its Content-Length")
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._call(self._stream.readline, size if size is not None else -1)
        self._read += len(data)
        if self._length is not None and self._read < self._length and not data:
            raise ClientDisconnected("the request body ended before its Content-Length")
        return data

    def __iter__(self):
        while line := self.readline():
            yield line

    @staticmethod
    def _call(function, *args):
        try:
            return function(*args)
        except TimeoutError:
            raise
        except Exception as error:  # gunicorn's framing errors (bad chunk size, missing terminator, ...)
            raise ClientDisconnected(f"malformed request body: {type(error).__name__}") from None


class CompleteBodyMiddleware:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        length = (environ.get("CONTENT_LENGTH") or "").strip()
        environ["wsgi.input"] = CompleteBody(environ["wsgi.input"], int(length) if length.isdigit() else None)
        return self.app(environ, start_response)
