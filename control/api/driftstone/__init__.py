"""The Driftstone /v1 surface (seeds 000 and 001), plus health and the capabilities no seed routes."""
from __future__ import annotations

from flask import Flask

from . import branches, collab, commits, contents, health, keys, repos, uploads
from . import extensions, merges, protections, remotes, webhooks

BLUEPRINTS = (health.bp, repos.bp, branches.bp, keys.bp, commits.bp, uploads.bp, collab.bp, contents.bp)
BLUEPRINTS += (merges.bp, extensions.bp, webhooks.bp, remotes.bp, protections.bp)


def register(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
