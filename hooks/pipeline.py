"""The ref-update pipeline: checks, then (after the compare-and-swap moved the refs) effects."""
from __future__ import annotations

import logging
from typing import Sequence

from .checks import PUSH_CHECKS
from .context import ChangeContext, Rejection
from .effects import EFFECTS
from .refs import RefUpdate

log = logging.getLogger(__name__)


def run_checks(ctx: ChangeContext, updates: Sequence[RefUpdate]) -> list[Rejection]:
    for check in PUSH_CHECKS:
        rejections = check(ctx, updates)
        if rejections:
            return rejections
    return []


def run_effects(ctx: ChangeContext, applied: Sequence[RefUpdate]) -> None:
    """Derived state only: a failure here is logged and repaired by reconcile, never undoes the ref move."""
    if not applied:
        return
    try:
        with ctx.db.session() as session:
            for effect in EFFECTS:
                effect(ctx, applied, session)
    except Exception:
        log.exception("ref-change effects failed for repo %s; run reconcile", ctx.repo.id)
