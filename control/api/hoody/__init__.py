"""The hoody surface (seed 003): a workspace's branches under /api/v1/workspaces/{workspaceID}/branches."""
from __future__ import annotations

from flask import Flask

from . import branches


def register(app: Flask) -> None:
    app.register_blueprint(branches.bp)
