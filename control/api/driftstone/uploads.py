"""/v1/repos/{repo}/uploads: signed upload URLs, the unauthenticated PUT they point at, and completion."""
from __future__ import annotations

from typing import Annotated, Iterator, Literal
from urllib.parse import quote, urlencode

from flask import Blueprint, request
from pydantic import AfterValidator, Field

from control.services import repos as repo_service
from control.services import uploads as upload_service
from storage.keys import AUTHENTICATED

from ..endpoint import Call, endpoint
from .common import BRANCH_NAME_PATTERN, Timestamp, WireModel
from .contents import PATH_PATTERN, PATH_RULES

bp = Blueprint("uploads", __name__)
BLOB_ROUTE = "/v1/blobs/<path:storage_path>"
_READ_CHUNK = 256 * 1024

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]


class UploadFileIn(WireModel):
    name: str = Field(min_length=1, max_length=upload_service.MAX_NAME_BYTES,
                      json_schema_extra={"pattern": PATH_PATTERN},
                      description=f"The file's path in the uploaded directory. {PATH_RULES}")
    hash: Sha256


class CreateUpload(WireModel):
    identifier: str = Field(min_length=1, max_length=200, pattern=upload_service.IDENTIFIER.pattern)
    files: list[UploadFileIn] = Field(min_length=1, max_length=upload_service.MAX_FILES)
    branch: str | None = Field(default=None, min_length=1, max_length=255,
                               json_schema_extra={"pattern": BRANCH_NAME_PATTERN})


class UploadTargetOut(WireModel):
    name: str
    hash: str
    path: str
    upload_url: str
    method: Literal["PUT"] = "PUT"


class UploadOut(WireModel):
    upload_id: str
    identifier: str
    branch: str
    expires_at: Timestamp
    files: list[UploadTargetOut]


class CompletedUploadOut(WireModel):
    upload_id: str
    identifier: str
    branch: str
    status: str
    commit: str
    completed_at: Timestamp


class SignedQuery(WireModel):
    expires: str | None = Field(default=None, max_length=20)
    file_id: str | None = Field(default=None, max_length=40)
    signature: str | None = Field(default=None, max_length=128)


class ReceivedFileOut(WireModel):
    file_id: str
    name: str
    hash: str
    size: int


def _upload_url(call: Call, path: str, signed) -> str:
    query = urlencode({"expires": signed.expires, "fileId": signed.file_id, "signature": signed.signature})
    return f"{call.base_url()}/v1/blobs/{quote(path, safe='/')}?{query}"


def _body_chunks() -> Iterator[bytes]:
    stream = request.stream
    while chunk := stream.read(_READ_CHUNK):
        yield chunk


@endpoint(bp, "POST", "/v1/repos/<repo>/uploads", summary="Create signed upload URLs", scope="agent",
          body=CreateUpload, response=UploadOut, status=201)
def create_upload(call: Call, repo: str, body: CreateUpload):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    specs = [upload_service.FileSpec(f.name, f.hash) for f in body.files]
    issued = upload_service.request_upload(call.session, call.context, row, call.principal, body.identifier, specs,
                                           body.branch)
    upload = issued.upload
    return UploadOut(upload_id=upload.id, identifier=upload.identifier, branch=upload.branch,
                     expires_at=upload.expires_at,
                     files=[UploadTargetOut(name=f.name, hash=f.expected_sha256, path=f.storage_path,
                                            upload_url=_upload_url(call, f.storage_path, signed))
                            for f, signed in issued.files])


@endpoint(bp, "POST", "/v1/repos/<repo>/uploads/<upload>/complete", summary="Complete an upload", scope="agent",
          response=CompletedUploadOut)
def complete_upload(call: Call, repo: str, upload: str):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    done = upload_service.complete_upload(call.session, call.context, row, call.principal, upload)
    return CompletedUploadOut(upload_id=done.id, identifier=done.identifier, branch=done.branch, status=done.status,
                              commit=done.commit_sha, completed_at=done.completed_at)


@endpoint(bp, "PUT", BLOB_ROUTE, summary="Upload one file's bytes to its signed URL (no API key)", scope=None,
          query=SignedQuery, response=ReceivedFileOut, raw_body=True)
def put_blob(call: Call, storage_path: str, query: SignedQuery):
    upload_service.check_upload_url(call.context, "PUT", storage_path, query.file_id, query.expires, query.signature)
    request.environ[AUTHENTICATED] = True  # a refusal from here on is heard by a client that sends all first
    received = upload_service.receive_file(call.session, call.context, storage_path, query.file_id, query.expires,
                                           query.signature, _body_chunks(), request.content_length)
    return ReceivedFileOut(file_id=received.id, name=received.name, hash=received.received_sha256,
                           size=received.size)


@endpoint(bp, "GET", BLOB_ROUTE, summary="Refused: upload URLs accept PUT only", scope=None, query=SignedQuery)
def get_blob(call: Call, storage_path: str, query: SignedQuery):
    upload_service.refuse_upload_url(call.context, "GET", storage_path, query.file_id, query.expires, query.signature)


@endpoint(bp, "POST", BLOB_ROUTE, summary="Refused: upload URLs accept PUT only", scope=None, query=SignedQuery)
def post_blob(call: Call, storage_path: str, query: SignedQuery):
    upload_service.refuse_upload_url(call.context, "POST", storage_path, query.file_id, query.expires, query.signature)
