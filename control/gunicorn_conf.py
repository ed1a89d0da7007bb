"""gunicorn settings for `driftstone serve` (production defaults; the CLI passes bind/workers/threads)."""
import gc
import logging
import os

worker_class = "control.gunicorn_worker.DeadlineWorker"  # gthread, with a deadline on heads, a minimum body rate
control_socket_disable = True
timeout = 120
graceful_timeout = 30
keepalive = 5
# gunicorn's most: a signed upload URL holds its file name percent-encoded (up to ~3,400 characters with 1,024-byte
# UTF-8 names; ~4,300 when it held the branch and identifier too, and at the default 4,094 some could not be used)
limit_request_line = 8190
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'


def pre_fork(server, worker):
    """With --preload (`driftstone serve` passes it for two workers or more) the master imports the code and
    builds the application once, and the workers fork with it, sharing those pages instead of each making its
    own copy (tree PSS idle 97 -> 84 MiB). The master's objects then move to a generation the workers' collector
    never scans: a scan writes to every object it visits and would copy each shared page into the worker that
    ran it. Connections and threads are each worker's own: none is open in the master when it forks."""
    if server.cfg.preload_app:
        _build_before_fork(server)
    gc.collect()
    gc.freeze()


def _build_before_fork(server):
    prepare = getattr(server.app.wsgi(), "before_fork", None)
    if prepare is None:
        return
    try:
        prepare()
    except Exception:  # each worker builds it again and fails to boot with the same error, as without preloading
        server.log.exception("could not build the application before forking the workers")


def post_fork(server, worker):
    if server.cfg.preload_app:
        forget = getattr(server.app.wsgi(), "after_fork", None)
        if forget is not None:
            forget()


def post_worker_init(worker):
    """Build the application before the first request instead of during it (a no-op once the master built it),
    then ask for what a killed worker left undone; a worker the elastic pool added for overlapping requests, or
    forked to take the place of one that outgrew its memory (and leaves once idle), replaces none killed."""
    load = getattr(worker.wsgi, "load", None)
    if load is None:
        return
    settings = getattr(load(), "settings", None)
    if settings is not None and hasattr(worker, "use_limits"):
        worker.use_limits(settings.request_head_timeout, settings.request_body_grace, settings.request_body_min_rate)
        worker.use_memory_limit(settings.worker_private_memory_limit)
    started = getattr(worker.wsgi, "worker_started", None)
    if started is not None:
        seat = getattr(worker, "seat", None)
        started(look_for_undone_work=not (seat is not None and (seat.added or seat.replacing)))


def worker_exit(server, worker):
    seat = getattr(worker, "seat", None)
    if seat is not None and os.getpid() == worker.pid:  # the worker itself, leaving nothing in hand
        from storage.jobs import work_in_hand

        if not work_in_hand():
            seat.leaving()
    leaving = getattr(getattr(worker, "wsgi", None), "worker_exiting", None)  # the master calls it too (a lost pid)
    if leaving is not None:
        try:
            leaving()
        except Exception:  # the database away: nothing to close cleanly
            server.log.debug("could not close the worker's database connections", exc_info=True)


def pre_request(worker, req):
    if hasattr(worker, "head_received"):
        worker.head_received(req)


def _json_error(sock, status_int, reason, mesg):
    """gunicorn answers requests it cannot parse with an HTML page; answer in JSON instead. The request's path is
    not known here, so the body is one that reads as the error of Driftstone's envelope, dojo's and hoody's
    (`errors`, `data`) alike.

    gunicorn's message may quote the offending header line: a key in it is blanked out.
    """
    import json

    from gunicorn import util

    from storage.key_format import redact_keys

    mesg = redact_keys(str(mesg))
    code = {400: "invalid", 413: "too_large", 431: "too_large"}.get(int(status_int), "invalid")
    message = f"{reason}: {mesg}"
    body = json.dumps({"success": False, "error": message, "code": code, "details": {},
                       "errors": [{"message": message, "code": code}], "data": None}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class _RedactKeys(logging.Filter):
    """gunicorn logs a request it cannot parse with the offending text, the access log each request line, and
    the application's warnings may quote what a client sent (a ref name): any of them may hold a key."""

    def filter(self, record: logging.LogRecord) -> bool:
        from storage.key_format import redact_keys

        record.msg = redact_keys(record.getMessage())
        record.args = None
        return True


def on_starting(server):
    from gunicorn import util

    util.write_error = _json_error
    for name in ("gunicorn.error", "gunicorn.access"):
        logging.getLogger(name).addFilter(_RedactKeys())
    application = logging.StreamHandler()  # the application's warnings and errors, which had only Python's
    application.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                                               "%Y-%m-%d %H:%M:%S %z"))
    application.addFilter(_RedactKeys())  # last-resort handler, unfiltered
    logging.getLogger().addHandler(application)
