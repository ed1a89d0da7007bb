"""The `driftstone` command: serve, migrate, worker, admin."""
from __future__ import annotations

import os
import sys

import click
from pydantic import ValidationError
from sqlalchemy import func, select

from storage.errors import DomainError, StorageFailure, is_storage_refusal
from storage.models import Organization
from storage.settings import Settings

from .bootstrap import bootstrap
from .services import accounts, repos


def _context():
    try:
        settings = Settings.from_env()
    except ValidationError as error:  # one line per setting, not a traceback
        raise click.ClickException("; ".join(
            f"DRIFTSTONE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())) from None
    try:
        return bootstrap(settings)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None


def _fail(error: DomainError):
    raise click.ClickException(error.message)


class _Commands(click.Group):
    def invoke(self, ctx):
        """A disk that refuses a write (full, read-only) is one line of error, not a traceback."""
        try:
            return super().invoke(ctx)
        except (StorageFailure, OSError) as error:
            if isinstance(error, OSError) and not is_storage_refusal(error):
                raise
            raise click.ClickException(str(error)) from None


@click.group(cls=_Commands)
def main():
    """Driftstone: a Git server for agent work."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", type=int, default=None, help="gunicorn worker processes")
@click.option("--threads", type=int, default=None, help="threads per worker")
def serve(host: str, port: int, workers: int | None, threads: int | None):
    """Run the whole application under gunicorn (foreground); migrates the data dir first."""
    context = _context()
    settings = context.settings
    with context.db.session() as session:
        orgs = session.scalar(select(func.count()).select_from(Organization))
    click.echo(f"driftstone: data in {settings.data_dir}, database {settings.effective_database_url.split('@')[-1]}")
    if not orgs:
        click.echo("driftstone: no organization yet. Create one and an admin key with:")
        click.echo("  driftstone admin create-org acme && driftstone admin create-key acme --scope admin")
    click.echo(f"driftstone: serving git and the API on http://{host}:{port}/", err=False)
    sys.stdout.flush()
    os.environ["DRIFTSTONE_DATA_DIR"] = str(settings.data_dir)
    argv = gunicorn_argv(host, port, workers or settings.gunicorn_workers, threads or settings.gunicorn_threads)
    os.execv(sys.executable, argv)


def gunicorn_argv(host: str, port: int, workers: int, threads: int) -> list[str]:
    """Several workers fork from a master that has imported the code and share it (tree PSS after a workload,
    two workers: 135 -> 110 MiB), as many as requests overlap (control/worker_pool.py); a single worker would only
    add the master's copy to its own (84 -> 97 MiB)."""
    return [
        sys.executable, "-m", "control.gunicorn_arbiter" if workers > 1 else "gunicorn", "wsgi:application",
        "--config", "python:control.gunicorn_conf",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "--threads", str(threads),
        *(["--preload"] if workers > 1 else []),
    ]


@main.command()
def migrate():
    """Create or upgrade the database schema."""
    context = _context()
    click.echo(f"migrated {context.settings.effective_database_url.split('@')[-1]}")


@main.command()
@click.option("--burst", is_flag=True, help="exit when the queue is empty")
def worker(burst: bool):
    """Run background jobs from Redis (DRIFTSTONE_REDIS_URL must be set)."""
    from control.jobs import FINISH_INTERRUPTED_WORK, watch_abandoned_jobs
    from storage.jobs import run_worker

    context = _context()
    if not context.settings.redis_url:
        raise click.ClickException("DRIFTSTONE_REDIS_URL is not set; jobs run in-process in the server")
    queue = context.jobs.queue
    click.echo(f"driftstone worker: queue {queue.name}")
    sys.stdout.flush()
    watch_abandoned_jobs()
    # a queue that lost its jobs (Redis restarted without its data) leaves work only this asks for again
    run_worker(queue, context.jobs.connection, burst=burst,
               periodic=lambda: context.jobs.enqueue(FINISH_INTERRUPTED_WORK))


@main.group()
def admin():
    """Operator commands."""


@admin.command("create-org")
@click.argument("slug")
@click.option("--name", default=None)
def create_org(slug: str, name: str | None):
    context = _context()
    try:
        with context.db.session() as session:
            org = accounts.create_org(session, slug, name)
    except DomainError as error:
        _fail(error)
    click.echo(f"created organization {org.slug} ({org.id})")


@admin.command("create-key")
@click.argument("org")
@click.option("--scope", type=click.Choice(["admin", "agent", "read"]), default="agent", show_default=True)
@click.option("--name", default="cli")
def create_key(org: str, scope: str, name: str):
    """Print a new API key (alone on the last line)."""
    context = _context()
    try:
        with context.db.session() as session:
            organization = accounts.get_org_by_slug(session, org)
            issued = accounts.create_key(session, organization.id, name, scope)
    except DomainError as error:
        _fail(error)
    click.echo(f"created {scope} key {issued.key.id} for {org}; it is shown only once:")
    click.echo(issued.secret)


def _split_repo(full_name: str) -> tuple[str, str]:
    org, _, name = full_name.partition("/")
    if not org or not name:
        raise click.BadParameter("expected ORG/NAME")
    return org, name


@admin.command("create-repo")
@click.argument("full_name", metavar="ORG/NAME")
@click.option("--description", default=None)
def create_repo(full_name: str, description: str | None):
    org, name = _split_repo(full_name)
    context = _context()
    try:
        with context.db.session() as session:
            organization = accounts.get_org_by_slug(session, org)
            repo = repos.create_repo(session, context.store, organization.id, name, description)
    except DomainError as error:
        _fail(error)
    click.echo(f"created repository {org}/{repo.slug} ({repo.id})")


@admin.command("protect-branch")
@click.argument("full_name", metavar="ORG/NAME")
@click.argument("pattern")
@click.option("--allow-force-push", is_flag=True)
@click.option("--allow-deletion", is_flag=True)
@click.option("--require-pull-request", is_flag=True, help="changes only through a stack's merge")
@click.option("--required-approvals", type=click.IntRange(0, 10), default=0,
              help="approving reviews a stack needs before it merges into such a branch")
def protect_branch(full_name: str, pattern: str, allow_force_push: bool, allow_deletion: bool,
                   require_pull_request: bool, required_approvals: int):
    """Protect branches matching PATTERN from force pushes and deletion (GitHub's patterns: `*` stops at '/',
    `**` crosses it; where several patterns match a branch, the strictest holds)."""
    org, name = _split_repo(full_name)
    context = _context()
    try:
        with context.db.session() as session:
            organization = accounts.get_org_by_slug(session, org)
            repo = repos.get_repo(session, organization.id, name)
            repos.protect_branch(session, repo, pattern, allow_force_push, allow_deletion, require_pull_request,
                                 required_approvals)
    except DomainError as error:
        _fail(error)
    click.echo(f"protected {org}/{name} branches matching {pattern}")


@admin.command("reconcile")
@click.argument("full_name", metavar="ORG/NAME")
def reconcile(full_name: str):
    """Rebuild the branch rows of a repository from its git refs."""
    org, name = _split_repo(full_name)
    context = _context()
    try:
        with context.db.session() as session:
            organization = accounts.get_org_by_slug(session, org)
            repo = repos.get_repo(session, organization.id, name)
            heads = repos.reconcile_branches(session, context.store, repo)
    except DomainError as error:
        _fail(error)
    context.jobs.join()  # the purge of a branch found gone, when jobs run in this process
    click.echo(f"reconciled {org}/{name}: {len(heads)} branches")


if __name__ == "__main__":
    main()
