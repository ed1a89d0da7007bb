"""When the database turns a request down (too many clients, a lock given up on), the API answers 503 with
Retry-After in its envelope, not 500: nothing was changed and the same request may succeed in a moment.

In-process (werkzeug's test client on the real application): the refusal comes from a spy raising what
SQLAlchemy raises then, since exhausting a real server's connections would starve the rest of the suite.
"""
from __future__ import annotations

import base64

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.support import in_process_app


def test_the_api_answers_503_with_retry_after(tmp_path, monkeypatch):
    client, auth, _path = in_process_app(tmp_path, "busy", "admin")
    key = base64.b64decode(auth["Authorization"].split()[1]).decode().partition(":")[2]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/repos", headers=headers).status_code == 200
    from storage.db import Database

    for refusal in (OperationalError("connect", {}, Exception("FATAL: sorry, too many clients already")),
                    PoolTimeout("QueuePool limit of size 10 overflow 40 reached")):
        def refuse(self, refusal=refusal):
            raise refusal

        monkeypatch.setattr(Database, "session", refuse)
        answer = client.get("/v1/repos", headers=headers)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        body = answer.get_json()
        assert body["success"] is False and body["code"] == "unavailable" and "requestId" in body["details"]
        assert "too many clients" not in answer.get_data(as_text=True)


def test_a_git_request_answers_503_with_retry_after(tmp_path, monkeypatch):
    client, auth, _path = in_process_app(tmp_path, "busy", "read")

    def refuse(*_args, **_kwargs):
        raise OperationalError("connect", {}, Exception("FATAL: sorry, too many clients already"))

    monkeypatch.setattr("server.app.find_principal", refuse)
    answer = client.get("/busy/r.git/info/refs?service=git-upload-pack", headers=auth)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert b"too many clients" not in answer.get_data()
