"""gunicorn settings for `driftstone serve` (production defaults; the CLI passes bind/workers/threads)."""
worker_class = "gthread"
control_socket_disable = True
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'


def post_worker_init(worker):
    """Build the application before the first request instead of during it."""
    load = getattr(worker.wsgi, "load", None)
    if load is not None:
        load()
