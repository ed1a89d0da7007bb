"""GET /readyz names the failing part with a 503; /healthz stays up (liveness needs nothing)."""
from werkzeug.test import Client

from storage.settings import Settings


def test_readyz_names_an_unreachable_database(tmp_path):
    import wsgi

    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = Client(wsgi.create_application(settings))
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["success"] is False and body["code"] == "not_ready"
    assert body["details"]["checks"]["database"].startswith("failing")
    assert "database" in body["error"] and "nobody" not in response.get_data(as_text=True)


def test_readyz_names_a_missing_repo_store_and_unreachable_redis(tmp_path):
    import wsgi

    from storage import migrate
    from storage.db import Database

    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    migrate.upgrade(Database(settings.effective_database_url))
    client = Client(wsgi.create_application(settings))
    checks = client.get("/readyz").get_json()["details"]["checks"]
    assert checks["repoStore"].startswith("failing") and checks["redis"].startswith("failing")
    assert checks["database"] == "ok" and checks["blobStore"] == "ok"


def test_a_worker_refuses_to_start_on_a_database_that_was_never_migrated(tmp_path):
    """Plain `gunicorn wsgi:application` does not migrate (`driftstone serve` and `driftstone migrate` do): a
    worker would answer every request with a 500, so it does not start, and says why."""
    import pytest

    import wsgi

    with pytest.raises(RuntimeError, match="run `driftstone migrate` first"):
        wsgi.create_application(Settings(data_dir=tmp_path))


def test_readyz_names_a_database_whose_schema_went_missing(tmp_path):
    import wsgi
    from sqlalchemy import text

    from storage import migrate
    from storage.db import Database

    settings = Settings(data_dir=tmp_path)
    database = Database(settings.effective_database_url)
    migrate.upgrade(database)
    client = Client(wsgi.create_application(settings))
    (tmp_path / "repos").mkdir()
    assert client.get("/readyz").status_code == 200
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["details"]["checks"]["database"] == "failing: NotMigrated"


def test_readyz_names_a_disk_short_of_the_free_space_it_wants(tmp_path):
    """A push or commit sent to a server whose disk is nearly full fails partway: the orchestrator should send
    traffic elsewhere (here the floor is set above what the disk has, as a full disk cannot be made in a test)."""
    import os

    import wsgi

    from storage import migrate
    from storage.db import Database

    usage = os.statvfs(tmp_path)
    free = usage.f_bavail * usage.f_frsize
    settings = Settings(data_dir=tmp_path, ready_min_free=free + 2**40)
    migrate.upgrade(Database(settings.effective_database_url))
    (tmp_path / "repos").mkdir()
    response = Client(wsgi.create_application(settings)).get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["details"]["checks"]
    assert checks["repoStore"] == "failing: DiskNearlyFull" and checks["database"] == "ok"
    roomy = Settings(data_dir=tmp_path, ready_min_free=0)
    assert Client(wsgi.create_application(roomy)).get("/readyz").status_code == 200
