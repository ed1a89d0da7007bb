"""Path locks in the repository's event log (its timeline): `lock.acquired` for a new lock, `lock.released` when
its holder releases it, an admin forces it (`force`) or its workspace is deleted (`workspaceDeleted`). A renewal
is no event; expiry is read from `expiresAt` (nothing runs when a lock lapses)."""
from __future__ import annotations

from sqlalchemy.orm import Session

from storage.ids import new_id
from storage.models import Event, PathLock
from storage.times import iso_z


def record_lock_event(session: Session, org_id: str, lock: PathLock, actor_key_id: str | None, action: str,
                      **details: bool) -> None:
    payload = {"lockId": lock.id, "workspaceId": lock.workspace_id, "patterns": list(lock.patterns),
               "expiresAt": iso_z(lock.expires_at), **details}
    session.add(Event(id=new_id("ev"), org_id=org_id, repo_id=lock.repo_id, actor_key_id=actor_key_id,
                      kind=f"lock.{action}", payload=payload))
