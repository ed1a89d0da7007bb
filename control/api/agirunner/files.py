"""/api/v1/workspaces/{id}/files (seed 002): a workspace's reference files: list, upload (one or a batch, base64),
read the bytes back (with headers that keep a browser from running them), delete."""
from __future__ import annotations

import base64
import binascii
from urllib.parse import quote
from datetime import datetime

from flask import Blueprint, Response, stream_with_context
from pydantic import Field

from control.services import project_files, projects
from storage.errors import BadRequest
from storage.times import as_utc

from ..endpoint import Call
from .common import WS, AgirunnerModel, route

bp = Blueprint("agirunner_files", __name__)

CONTENT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; connect-src 'none'; font-src 'none'; "
                               "form-action 'none'; frame-ancestors 'none'; img-src 'self' data: blob:; "
                               "media-src 'self' blob:; object-src 'none'; script-src 'none'; style-src 'unsafe-inline'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
CHUNK = 256 * 1024
# a JSON body holding a file of MAX_FILE_BYTES in base64 (4/3 of it), with room for the other fields; a batch's
# files share it
FILE_BODY = project_files.MAX_FILE_BYTES * 4 // 3 + 64 * 1024


# What the server refuses with agirunner's 400s, said in the document as well (a client can check before sending)
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"
TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
MEDIA_TYPE = rf"^{TOKEN}/{TOKEN}( *; *{TOKEN}=({TOKEN}|\"[^\"\x00-\x1f\x7f]*\"))*$"  # a MIME type, no header tricks
BASE_NAME = r"^[^\x00-\x1f\x7f]*[^/\\\x00-\x20\x7f]$"  # ASCII classes: ECMAScript's \s is not Python's


class FileUpload(AgirunnerModel):
    key: str | None = Field(default=None, min_length=1, max_length=120, json_schema_extra={"pattern": r"[^\x00-\x20]"})
    description: str | None = Field(default=None, max_length=2000)
    file_name: str = Field(min_length=1, max_length=255, json_schema_extra={"pattern": BASE_NAME})
    content_base64: str = Field(min_length=1, json_schema_extra={"pattern": BASE64})
    content_type: str | None = Field(default=None, min_length=1, max_length=255, pattern=MEDIA_TYPE)


class FileBatch(AgirunnerModel):
    files: list[FileUpload] = Field(min_length=1, json_schema_extra={"maxItems": project_files.MAX_FILES_PER_REQUEST})


class ProjectFileOut(AgirunnerModel):
    id: str
    workspace_id: str
    key: str
    description: str | None
    file_name: str
    content_type: str
    size_bytes: int
    created_at: datetime
    download_url: str


def _file_out(row) -> ProjectFileOut:
    return ProjectFileOut(id=row.id, workspace_id=row.repo_id, key=row.key, description=row.description,
                   file_name=row.file_name, content_type=row.content_type, size_bytes=row.size_bytes,
                   created_at=as_utc(row.created_at),
                   download_url=f"/api/v1/workspaces/{row.repo_id}/files/{row.id}/content")


def _new_file(upload: FileUpload, index: int | None = None) -> project_files.NewFile:
    try:
        content = base64.b64decode(upload.content_base64, validate=True)
    except (binascii.Error, ValueError):
        where = "content_base64" if index is None else f"files.{index}.content_base64"
        raise BadRequest(f"{where} is not base64", {"field": where}) from None
    return project_files.NewFile(upload.file_name, content, upload.key, upload.description, upload.content_type)


def _project(call: Call, workspace_id: str):
    return projects.visible_project(call.session, call.principal, workspace_id)


@route(bp, "GET", WS + "/files", summary="List the workspace's files (newest first)", scope="agent",
       response=list[ProjectFileOut])
def list_files(call: Call, workspace_id: str):
    return [_file_out(row) for row in project_files.list_files(call.session, _project(call, workspace_id))]


@route(bp, "POST", WS + "/files", summary="Upload a file (base64)", scope="admin", body=FileUpload, response=ProjectFileOut,
       status=201, max_body=FILE_BODY)
def upload_file(call: Call, workspace_id: str, body: FileUpload):
    (row,) = project_files.add_files(call.session, call.context.blobs, _project(call, workspace_id), call.principal,
                                     [_new_file(body)])
    return _file_out(row)


@route(bp, "POST", WS + "/files/batch", summary="Upload several files at once (base64, at most 10)", scope="admin",
       body=FileBatch, response=list[ProjectFileOut], status=201, max_body=FILE_BODY)
def upload_files(call: Call, workspace_id: str, body: FileBatch):
    new = [_new_file(upload, index) for index, upload in enumerate(body.files)]
    rows = project_files.add_files(call.session, call.context.blobs, _project(call, workspace_id), call.principal, new)
    return [_file_out(row) for row in rows]


@route(bp, "GET", WS + "/files/<ident:file_id>/content", summary="A file's bytes (not JSON)", scope="agent",
       produces="*/*")
def file_content(call: Call, workspace_id: str, file_id: str):
    row = project_files.get_file(call.session, _project(call, workspace_id), file_id)
    return blob_response(call.context.blobs, row.storage_path, row.content_type, row.size_bytes, row.file_name)


def blob_response(blobs, storage_path: str, content_type: str, size: int, name: str) -> Response:
    """A stored file's bytes, streamed, with the headers that keep a browser from running them."""
    source = blobs.open_read(storage_path)

    def chunks():
        with source:
            while chunk := source.read(CHUNK):
                yield chunk

    headers = {**CONTENT_HEADERS, "Content-Disposition": content_disposition(name), "Content-Length": str(size)}
    return Response(stream_with_context(chunks()), status=200, content_type=content_type, headers=headers)


def content_disposition(name: str) -> str:
    """inline, with the name for a browser to save under: an ASCII stand-in, and the name itself per RFC 5987
    (a name beyond Latin-1 in a header made the answer a 500)."""
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    if plain == name:
        return f'inline; filename="{name}"'
    return f"inline; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


@route(bp, "DELETE", WS + "/files/<ident:file_id>", summary="Delete a file", scope="admin", status=204)
def delete_file(call: Call, workspace_id: str, file_id: str):
    project_files.delete_file(call.session, _project(call, workspace_id), file_id)
    return Response(status=204)
