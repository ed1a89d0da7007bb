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

    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    app = wsgi.create_application(settings)
    client = Client(app)
    from storage import migrate
    from storage.db import Database

    migrate.upgrade(Database(settings.effective_database_url))
    checks = client.get("/readyz").get_json()["details"]["checks"]
    assert checks["repoStore"].startswith("failing") and checks["redis"].startswith("failing")
    assert checks["database"] == "ok" and checks["blobStore"] == "ok"
