"""Flask application factory for the control plane."""
from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from control.context import AppContext
from storage.errors import DomainError


def create_app(context: AppContext) -> Flask:
    app = Flask("driftstone")
    app.config["DRIFTSTONE"] = context

    @app.get("/healthz")
    def healthz():
        return jsonify({"success": True, "data": {"status": "ok"}})

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        body = {"success": False, "error": error.message, "code": error.code, "details": error.details}
        return jsonify(body), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.code, "invalid")
        body = {"success": False, "error": error.description or error.name, "code": code, "details": {}}
        return jsonify(body), error.code

    return app
