"""Settings read once from the environment by the composition root (wsgi.py / the CLI) and passed down."""
from __future__ import annotations

import os
import re
import secrets
import shlex
import threading
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, Field, field_validator

from .db import MAX_OVERFLOW, POOL_SIZE
from .housekeeping import HousekeepingLimits

PREFIX = "DRIFTSTONE_"
MiB = 1024 * 1024


class Settings(BaseModel):
    data_dir: Path = Field(default=Path("./data"), validate_default=True)
    database_url: str | None = None
    redis_url: str | None = None
    redis_namespace: str = "driftstone"
    blob_url: str | None = None
    secret_key: str | None = None
    public_url: str | None = None
    max_object_size: int = Field(default=100 * MiB, gt=0)
    max_push_size: int = Field(default=2048 * MiB, gt=0)  # the pack as sent
    # what its objects inflate to, together: perl5's whole history is 20.9 GiB from a 365 MB pack, git's 7.7 GiB
    max_push_inflated_size: int = Field(default=64 * 1024 * MiB, gt=0)
    housekeeping_max_packs: int = Field(default=50, gt=0)
    housekeeping_max_loose_objects: int = Field(default=6700, gt=0)
    housekeeping_max_ref_updates: int = Field(default=256, gt=0)
    # days an object no ref reaches (nor a row names) is kept after it was last written; 0: kept for good. At least
    # a day: git's prune also removes what lies under objects/tmp_* for that long, a running push's quarantine too
    housekeeping_prune_after_days: int = Field(default=14, ge=0, le=3650)
    request_idle_timeout: float = Field(default=120, gt=0)  # seconds a request may send (or read) nothing
    request_head_timeout: float = Field(default=30, gt=0)  # seconds to send a request's line and headers
    request_body_grace: float = Field(default=30, gt=0)  # seconds of waiting on a body, plus 1 s per min_rate bytes
    request_body_min_rate: float = Field(default=1024, gt=0)  # bytes per second of waiting a body must average
    ready_min_free: int = Field(default=256 * MiB, ge=0)  # free bytes of the repositories' disk /readyz wants
    pack_cache_minutes: int = Field(default=10, ge=0)  # how long a clone's pack is kept to send again; 0: never
    pack_cache_min_free: int = Field(default=2048 * MiB, ge=0)  # bytes of free disk below which none is kept
    pack_cache_max_bytes: int = Field(default=4096 * MiB, ge=0)  # all kept packs together; the oldest go first
    pack_cache_min_repository_size: int = Field(default=4 * MiB, ge=0)  # packs of smaller repositories: not kept
    # earlier clones of a state before its pack is kept (the program reads at most 18 digits)
    pack_cache_min_occurrences: int = Field(default=1, ge=0, le=1000)
    gunicorn_workers: int = Field(default=2, gt=0)
    gunicorn_threads: int = Field(default=32, gt=0)
    # with two workers or more: the fewest kept while requests come one at a time, and the seconds a worker added
    # for overlapping requests stays idle before it goes (control/worker_pool.py); min_workers = workers: all, always
    gunicorn_min_workers: int = Field(default=1, gt=0)
    gunicorn_idle_worker_seconds: float = Field(default=30, gt=0)
    # bytes of memory of its own (pages it does not share with the master) past which a worker is replaced by a
    # fresh fork once idle; 0: never (control/worker_memory.py)
    worker_private_memory_limit: int = Field(default=16 * MiB, ge=0)
    # seconds a push's checks or effects wait for a database lock (PostgreSQL) before trying again: a table locked
    # for minutes (a migration, VACUUM FULL) kept a push whose ref had moved waiting that long for "ok"
    database_lock_wait: float = Field(default=10, gt=0)
    database_pool_size: int = Field(default=POOL_SIZE, gt=0)
    database_max_overflow: int = Field(default=MAX_OVERFLOW, ge=0)
    # the agent program an extension run starts (split like a shell would; the prompt comes on its standard input);
    # unset: runs are refused
    extension_command: str | None = None
    extension_timeout: int = Field(default=900, gt=0, le=6 * 3600)  # seconds a run's agent may take
    # names of this server's environment variables the agent gets (its model's API key, say); never DRIFTSTONE_*
    extension_env: str | None = None
    # bwrap: the agent runs in bubblewrap, the server's data directory hidden and all but its run's directory
    # read-only; none: as the server's own user, seeing all it sees (for a command that brings its own sandbox)
    extension_sandbox: Literal["bwrap", "none"] = "bwrap"
    # host: the sandboxed agent shares the server's network (to call its model); none: it has none at all
    extension_network: Literal["host", "none"] = "host"
    # repository URLs the server itself reads (verify-git-access): plain http, and private or loopback addresses
    remote_allow_http: bool = False
    remote_allow_private: bool = False

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Resolved once, where the process starts: git takes a relative core.hooksPath relative to the
        repository and silently runs no hook at all if it finds none there."""
        value = value.expanduser().resolve()
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @field_validator("extension_command")
    @classmethod
    def _splittable(cls, value: str | None) -> str | None:
        if value is not None and not shlex.split(value):
            raise ValueError("names no program")
        return value

    @field_validator("extension_env")
    @classmethod
    def _passable_names(cls, value: str | None) -> str | None:
        for name in (value or "").split(","):
            name = name.strip()
            if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name.upper().startswith(PREFIX):
                raise ValueError(f"{name}: the server's own settings (keys, database URLs) are not for agents")
        return value

    @property
    def extension_argv(self) -> list[str] | None:
        return shlex.split(self.extension_command) if self.extension_command else None

    @property
    def extension_env_names(self) -> list[str]:
        return [name.strip() for name in (self.extension_env or "").split(",") if name.strip()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {}
        for name in cls.model_fields:
            raw = environ.get(PREFIX + name.upper())
            if raw not in (None, ""):
                values[name] = raw
        return cls(**values)

    @property
    def housekeeping_limits(self) -> HousekeepingLimits:
        return HousekeepingLimits(self.housekeeping_max_packs, self.housekeeping_max_loose_objects,
                                  self.housekeeping_max_ref_updates, self.housekeeping_prune_after_days * 24 * 3600)

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'driftstone.db').resolve()}"

    @property
    def effective_blob_url(self) -> str:
        return self.blob_url or self.blobs_dir.resolve().as_uri()

    def with_secret(self) -> "Settings":
        """Fill in the secret key, generating and keeping one in the data dir on first start.

        Workers of a fresh server all get here at once: the key is written whole to a file of its own and
        linked into place, so every process reads the same complete key, never a half-written or empty one.
        """
        if self.secret_key:
            return self
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".secret_key.{os.getpid()}.{threading.get_ident()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48))
                    handle.flush()
                    os.fsync(handle.fileno())
                try:
                    os.link(temporary, path)
                except FileExistsError:  # another process got there first: its key is the key
                    pass
            finally:
                os.unlink(temporary)
        secret = path.read_text().strip()
        if not secret:
            raise ValueError(f"{path} is empty: remove it to have a new key made, or set DRIFTSTONE_SECRET_KEY")
        return self.model_copy(update={"secret_key": secret})
