"""The agirunner surface (seed 002): the Project view of repositories under /api/v1/workspaces, {"data": ...}."""
from __future__ import annotations

from flask import Flask

from . import artifacts, files, workspaces

BLUEPRINTS = (workspaces.bp, files.bp, artifacts.bp)


def register(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
