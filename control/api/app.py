"""Flask application factory for the control plane: every surface, one error taxonomy, one OpenAPI document."""
from __future__ import annotations

import logging
import uuid

from flask import Flask, g, jsonify, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from control.context import AppContext
from control.services import repos as repo_service
from control.services.naming import folded_slug
from storage.errors import ChangeLeftApplied, DomainError, NotFound, StorageFailure, is_storage_refusal
from storage.git_env import GitFailed

from . import agirunner, dojo, driftstone, hoody
from .endpoint import IdentConverter
from .envelope import failure
from .openapi import build_openapi
from .request_body import CompleteBodyMiddleware

log = logging.getLogger(__name__)
HTTP_CODES = {400: "invalid", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              409: "conflict", 413: "too_large", 415: "unsupported_media_type", 429: "rate_limited"}


def create_app(context: AppContext) -> Flask:
    app = Flask("driftstone", static_folder=None)  # no /static route: every route is a documented operation
    app.url_map.converters["ident"] = IdentConverter
    app.url_map.merge_slashes = False  # a // in a path is a 404 in the API's envelope, not an HTML redirect page
    app.config["DRIFTSTONE"] = context
    app.config["MAX_CONTENT_LENGTH"] = None
    app.json.sort_keys = False

    driftstone.register(app)
    dojo.register(app)
    agirunner.register(app)
    hoody.register(app)
    app.wsgi_app = CompleteBodyMiddleware(app.wsgi_app)

    @app.get("/openapi.json", provide_automatic_options=False)
    def openapi():
        return jsonify(build_openapi())

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        headers = {"WWW-Authenticate": 'Bearer realm="Driftstone"'} if error.status == 401 else None
        return failure(error.message, error.code, error.status, error.details, headers, path=request.path)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = error.description or error.name
        if error.code == 404:
            message = f"no route for {request.method} {request.path}"
        response = failure(message, HTTP_CODES.get(error.code, "invalid"), error.code or 400, path=request.path)
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(RecursionError)
    def too_deep(error: RecursionError):
        return failure("the request body is nested too deeply", "invalid", 400, path=request.path)

    @app.errorhandler(TimeoutError)
    def body_timeout(error: TimeoutError):
        return failure("the request body stopped arriving", "invalid", 408, path=request.path)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(error: Exception):
        """The database refused a connection (too many clients, restarting), gave up on a lock, or the pool
        stayed empty: nothing was changed, and the same request may succeed in a moment. A database whose disk is
        full is a storage failure: nothing changed either, but no moment will fix it."""
        if is_storage_refusal(error):
            return storage_failed(error)
        request_id = uuid.uuid4().hex
        log.warning("database unavailable, request %s: %s", request_id, type(error).__name__, exc_info=True)
        return failure("the database is unavailable or busy; retry shortly", "unavailable", 503,
                       {"requestId": request_id}, {"Retry-After": "1"}, path=request.path)

    def deleted_meanwhile(error: Exception):
        """The request named a repository deleted while it wrote into it: git's files went mid-write."""
        log.info("%s %s: the repository was deleted meanwhile (%s)", request.method, request.path,
                 type(error).__name__)
        return failure("repository not found", "not_found", 404, path=request.path)

    @app.errorhandler(OSError)
    def os_error(error: OSError):
        """The disk refused a write where no layer turned it into a StorageFailure (a file of an upload, of an
        overlay): the same answer. Any other OSError (a client's connection) is unexpected, as before."""
        return storage_failed(error) if is_storage_refusal(error) else unexpected(error)

    @app.errorhandler(StorageFailure)
    def storage_failed(error: Exception):
        if _repository_gone(context):
            return deleted_meanwhile(error)
        request_id = uuid.uuid4().hex
        log.error("storage refused a write, request %s: %s", request_id, error)
        return failure("the server could not write to its storage; retry later", "unavailable", 503,
                       {"requestId": request_id}, {"Retry-After": "30"}, path=request.path)

    @app.errorhandler(GitFailed)
    def git_stopped(error: GitFailed):
        """A git the request ran was killed (out of memory, an operator, a restart): the request's transaction
        rolls back (a ref change it may have made is handed to a reconcile, hooks.pipeline), and the same request
        may succeed in a moment. A git that failed on its own is unexpected, as before."""
        if error.returncode >= 0:
            return unexpected(error)
        if _repository_gone(context):
            return deleted_meanwhile(error)
        request_id = uuid.uuid4().hex
        log.warning("request %s: git was killed (signal %d): %s", request_id, -error.returncode, error.cmd[:4])
        return failure("a git process of the server was stopped before it finished; retry shortly",
                       "unavailable", 503, {"requestId": request_id}, {"Retry-After": "1"}, path=request.path)

    @app.errorhandler(ChangeLeftApplied)
    def left_applied(error: ChangeLeftApplied):
        request_id = uuid.uuid4().hex
        log.error("request %s failed after its change was made, and the change could not be taken back: %s",
                  request_id, error.__cause__)
        return failure("the request failed after its change was made, and the server could not take it back (its "
                       "storage refused the write): the change stands, and its records are being rebuilt from the "
                       "repository. Read the branch before trying again", "internal", 500, {"requestId": request_id},
                       path=request.path)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if _repository_gone(context):
            return deleted_meanwhile(error)
        request_id = uuid.uuid4().hex
        log.exception("unhandled error, request %s", request_id)
        return failure("internal error", "internal", 500, {"requestId": request_id}, path=request.path)

    return app


def _repository_gone(context: AppContext) -> bool:
    """Whether the request named a repository of the caller's organization that is now deleted."""
    principal = g.get("principal")
    args = request.view_args or {}
    slug = args.get("repo") or (args.get("name") if "owner" in args else None)
    if principal is None or not isinstance(slug, str):
        return False
    try:
        with context.db.session() as session:
            repo_service.get_repo(session, principal.org_id, folded_slug(slug))
    except NotFound:
        return True
    except SQLAlchemyError:
        pass
    return False
