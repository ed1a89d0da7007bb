"""The dojo surface (seed 004): overlay workspaces under /api/repos/{owner}/{name}/..., bare JSON objects."""
from __future__ import annotations

from flask import Flask

from . import workspaces

BLUEPRINTS = (workspaces.bp,)


def register(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
