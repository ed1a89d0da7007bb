"""/v1 contents: commit file operations without a checkout, read a file or a tree at a revision, diff revisions.

    POST /v1/repos/{repo}/commits              ONE commit of create/update/delete/rename operations on a branch
    GET  /v1/repos/{repo}/contents/{path}      a file at ?ref= (a directory is 422: list it with /tree)
    GET  /v1/repos/{repo}/tree                 a directory at ?ref=&path=&recursive=
    GET  /v1/repos/{repo}/diff                 `git diff base head` as seed 003's diff object, in camelCase
"""
from __future__ import annotations

import base64
import re
from typing import Annotated, Literal, Union

from flask import Blueprint
from pydantic import AfterValidator, Field, StringConstraints

from control.services import contents as content_service
from control.services import repos as repo_service
from storage.git_diff import DiffLimits
from storage.git_objects import Identity
from storage.intent import trailer_key

from ..endpoint import Call, endpoint
from .common import BRANCH_NAME_PATTERN, WireModel

bp = Blueprint("contents", __name__)

SHA = r"^[0-9a-f]{40}$"
# standard alphabet, padded; ends with "nothing follows" rather than '$', which Python also matches before a final '\n'
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?(?![\s\S])"
INTENT_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*(?![\s\S])"

# The server's path rule (hooks.paths.path_problem) written as a pattern for the document. Exact except that the
# server counts the 1024 / 255 limits (path / component) in UTF-8 bytes, where the pattern counts characters.
# `.git` in any spelling: HFS+ ignorable code points anywhere, any character whose NFKC case fold is one of
# '.', 'g', 'i', 't' (fullwidth, mathematical, circled, ...), trailing dots and spaces, an NTFS stream (":..."),
# and 8.3 short names (git~1).
_IGNORABLE = "\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff"
_SKIP = f"[{_IGNORABLE}]*"
_DOT = "[.\u2024\ufe52\uff0e]"
_G = ("[Gg\u1d33\u1d4d\u210a\u24bc\u24d6\uff27\uff47\U0001d406\U0001d420\U0001d43a\U0001d454\U0001d46e"
      "\U0001d488\U0001d4a2\U0001d4d6\U0001d4f0\U0001d50a\U0001d524\U0001d53e\U0001d558\U0001d572\U0001d58c"
      "\U0001d5a6\U0001d5c0\U0001d5da\U0001d5f4\U0001d60e\U0001d628\U0001d642\U0001d65c\U0001d676\U0001d690"
      "\U0001f136]")
_I = ("[Ii\u1d35\u1d62\u2071\u2110\u2111\u2139\u2148\u2160\u2170\u24be\u24d8\uff29\uff49\U0001d408\U0001d422"
      "\U0001d43c\U0001d456\U0001d470\U0001d48a\U0001d4be\U0001d4d8\U0001d4f2\U0001d526\U0001d540\U0001d55a"
      "\U0001d574\U0001d58e\U0001d5a8\U0001d5c2\U0001d5dc\U0001d5f6\U0001d610\U0001d62a\U0001d644\U0001d65e"
      "\U0001d678\U0001d692\U0001f138]")
_T = ("[Tt\u1d40\u1d57\u209c\u24c9\u24e3\uff34\uff54\U0001d413\U0001d42d\U0001d447\U0001d461\U0001d47b\U0001d495"
      "\U0001d4af\U0001d4c9\U0001d4e3\U0001d4fd\U0001d517\U0001d531\U0001d54b\U0001d565\U0001d57f\U0001d599"
      "\U0001d5b3\U0001d5cd\U0001d5e7\U0001d601\U0001d61b\U0001d635\U0001d64f\U0001d669\U0001d683\U0001d69d"
      "\U0001f143]")
_TILDE = "[~\uff5e]"
_DIGIT = ("(?:\\d|[\u00b2\u00b3\u00b9\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2473\u24ea\u3251-\u325f"
          "\u32b1-\u32bf])")
_GIT = f"{_SKIP}{_G}{_SKIP}{_I}{_SKIP}{_T}{_SKIP}"
_TRAILING = "\u00a0\u2000-\u200a\u2024-\u2026\u202f\u205f\u3000\ufe19\ufe30\ufe52\uff0e"  # NFKC: only dots, spaces
_COLON = ":\u2a74\ufe13\ufe55\uff1a"  # NFKC holds ':' (an NTFS stream after normalisation)
_DOTGIT_COMPONENT = (f"(?:{_SKIP}{_DOT}{_GIT}|{_GIT}{_TILDE}(?:{_SKIP}{_DIGIT})+{_SKIP})"
                     f"[ .{_IGNORABLE}{_TRAILING}]*(?:[{_COLON}][^/]*)?(?:/|$)")
PATH_PATTERN = (
    r"^(?![\s\S]*::)"  # an NTFS stream
    r"(?![\s\S]*[\x00-\x1f\x7f-\x9f\\])"  # control characters, backslashes
    r"(?!(?:[^/]*/)*[ .]*(?:/|$))"  # a leading '/', an empty, '.', '..' or dots-and-spaces component
    f"(?!(?:[^/]*/)*{_DOTGIT_COMPONENT})"  # .git
    r"[^/]{1,255}(?:/[^/]{1,255}){0,63}$"
)
PATH_RULES = ("Relative, '/'-separated, at most 1024 bytes (255 per component, 64 components). Refused (422): "
              "'..', '.', empty components, a leading '/', backslashes, control characters, '::', and '.git' in "
              "any spelling (any case, git~1, trailing dots or spaces, NTFS streams, HFS+ ignorable or NFKC-"
              "equivalent characters).")


def _path_field(description: str, **kwargs):
    return Field(min_length=1, max_length=1024, json_schema_extra={"pattern": PATH_PATTERN},
                 description=f"{description}. {PATH_RULES}", **kwargs)


def _checked_intent(intent: dict | None) -> dict | None:
    if intent is not None and len(intent) > 50:
        raise ValueError("at most 50 intent keys")
    trailers: dict[str, str] = {}
    for key in intent or {}:
        if not re.search(INTENT_KEY_PATTERN, key) or len(key) > 64:
            raise ValueError(f"intent key {key!r}: 1-64 letters, digits, '_' or '-', starting with a letter")
        other = trailers.setdefault(trailer_key(key).casefold(), key)
        if other != key:  # both would be written as one trailer (trailers ignore case), twice
            raise ValueError(f"intent keys {other!r} and {key!r} name the same trailer {trailer_key(key)!r}")
    return intent


def _text(pattern: str, rule: str):
    """A string checked against `pattern` with Python's re (the document's engine), documented as that pattern."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise ValueError(rule)
        return value

    return AfterValidator(check), Field(json_schema_extra={"pattern": pattern})


NO_NUL = r"^[^\x00]*$"  # NUL has no place in a commit, and PostgreSQL's JSON refuses it
IntentValue = Union[Annotated[str, StringConstraints(max_length=2000), *_text(NO_NUL, "no NUL characters")],
                    bool, int, float]
Intent = Annotated[dict[str, IntentValue], AfterValidator(_checked_intent)]


def intent_field():
    """An optional `Intent` body field, documented with the rules `_checked_intent` enforces."""
    return Field(default=None, json_schema_extra={"maxProperties": 50,
                                                  "propertyNames": {"pattern": INTENT_KEY_PATTERN, "maxLength": 64}},
                 description="stored with the commit and as `Intent-<Key>: value` trailers (goal -> Intent-Goal): "
                             "up to 50 keys (a letter, then letters, digits, '_' or '-'), scalar values")
Mode = Literal["100644", "100755"]


def _checked_base64(value: str) -> str:
    if not re.search(BASE64_PATTERN, value):
        raise ValueError("not base64 (standard alphabet, padded)")
    return value


Base64 = Annotated[str, AfterValidator(_checked_base64),
                   Field(json_schema_extra={"pattern": BASE64_PATTERN}, description="the file's bytes, base64")]


# a commit's author header is `name <email>`: '<' or '>' in either would be dropped, so they are refused instead
PERSON_NAME = r"^[^\x00-\x1f\x7f<>]+(?![\s\S])"
EMAIL = r"^[^\x00-\x20\x7f<>]+(?![\s\S])"
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f]*(?![\s\S])"
OneLine = Annotated[str, *_text(ONE_LINE, "one line of text without control characters")]
AuthorName = Annotated[str, StringConstraints(min_length=1, max_length=200),
                       *_text(PERSON_NAME, "one line of text without '<' or '>'")]
AuthorEmail = Annotated[str, StringConstraints(min_length=1, max_length=320),
                        *_text(EMAIL, "an email address: no spaces, control characters, '<' or '>'")]


class Author(WireModel):
    name: AuthorName
    email: AuthorEmail


class CreateFile(WireModel):
    """Add a file; `path` must not exist yet (409 conflict)."""

    action: Literal["create"]
    path: str = _path_field("the new file")
    content: Base64
    mode: Mode = "100644"


class UpdateFile(WireModel):
    """Replace an existing file's content (404 not_found if it is not there); keeps its mode unless given."""

    action: Literal["update"]
    path: str = _path_field("the file to change")
    content: Base64
    mode: Mode | None = None


class DeleteFile(WireModel):
    """Remove an existing file (404 not_found if it is not there)."""

    action: Literal["delete"]
    path: str = _path_field("the file to remove")


class RenameFile(WireModel):
    """Move the file at `previousPath` (404 not_found if missing) to `path` (409 conflict if it exists); `content`
    and `mode` optionally change it on the way (kept otherwise)."""

    action: Literal["rename"]
    previous_path: str = _path_field("the file's current path")
    path: str = _path_field("the file's new path")
    content: Base64 | None = None
    mode: Mode | None = None


FileOperationIn = Annotated[Union[CreateFile, UpdateFile, DeleteFile, RenameFile], Field(discriminator="action")]


class CreateCommit(WireModel):
    """Atomic multi-file commit: ONE commit on top of the branch head, no checkout.

    `expectedHeadSha`: the head you saw (409 stale_ref, with `actualHeadSha` in details, if the branch moved);
    null: the branch must have no commit yet (this commit starts it); absent: commit on the current head (a
    default or record-only branch with no commit yet gets its first one; an unknown branch is 404).
    Operations are checked against the head's tree; a path may appear in one operation only and may not lie
    inside another operation's path (409 conflict), and a commit that would change nothing is 409 too.
    """

    branch: str = Field(min_length=1, max_length=255, json_schema_extra={"pattern": BRANCH_NAME_PATTERN})
    expected_head_sha: str | None = Field(default=None, pattern=SHA)
    message: Annotated[str, StringConstraints(min_length=1, max_length=65536), *_text(NO_NUL, "no NUL characters")]
    author: Author | None = Field(default=None, description="default: agent <agent@driftstone.local>")
    intent: Intent | None = intent_field()
    operations: list[FileOperationIn] = Field(min_length=1, max_length=1000)


class CommitCreated(WireModel):
    sha: str
    parents: list[str]
    branch: str
    tree: str
    message: str
    intent: dict[str, IntentValue] | None


class RefQuery(WireModel):
    ref: str | None = Field(default=None, min_length=1, max_length=255,
                            description="a branch name or a full commit sha; default: the default branch")


class FileContentOut(WireModel):
    path: str
    ref: str
    sha: str = Field(description="the commit the file was read from")
    blob_sha: str
    size: int
    mode: str
    type: Literal["blob", "symlink"]
    encoding: Literal["base64"] = "base64"
    content: str


class TreeQuery(RefQuery):
    path: str = Field(default="", max_length=1024, description="a directory; default: the root")
    recursive: bool = False


class TreeEntryOut(WireModel):
    path: str
    type: Literal["blob", "tree", "symlink", "commit"]
    mode: str
    sha: str
    size: int | None = Field(description="bytes, for blobs and symlinks")


class TreeOut(WireModel):
    ref: str
    sha: str = Field(description="the commit listed")
    path: str
    entries: list[TreeEntryOut]
    truncated: bool = Field(description=f"more than {content_service.MAX_TREE_ENTRIES} entries; the rest is cut")


class DiffQuery(WireModel):
    head: str | None = Field(default=None, min_length=1, max_length=255,
                             description="branch or full commit sha; default: the default branch")
    base: str | None = Field(default=None, min_length=1, max_length=255,
                             description="branch or full commit sha; default: head's first parent")
    format: Literal["summary", "full"] = Field(default="full", description="summary: counts only, no hunks")
    file: str | None = _path_field("only this file (or directory); renames are then not detected", default=None)
    max_files: int = Field(default=300, ge=1, le=1000)
    max_lines: int = Field(default=20000, ge=1, le=100000, description="hunk lines over all files")


class DiffLineOut(WireModel):
    type: Literal["context", "add", "remove"]
    content: str = Field(description="the line without its line terminator")
    no_newline: bool | None = Field(default=None, description="present (true) when the file ends here without "
                                                              "a newline")


class DiffHunkOut(WireModel):
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: list[DiffLineOut]


class DiffFileOut(WireModel):
    path: str
    old_path: str | None = Field(description="renames: the path in base")
    status: Literal["added", "modified", "deleted", "renamed", "copied"]
    insertions: int
    deletions: int
    binary: bool
    old_mode: str | None
    new_mode: str | None
    truncated: bool = Field(description="hunks left out (output budget or file size); counts still hold unless "
                                        "the file was too large to compare")
    hunks: list[DiffHunkOut]


class DiffOut(WireModel):
    base_commit: str | None
    head_commit: str
    files: list[DiffFileOut]
    truncated: bool


def _camel(value):
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _operation(op) -> content_service.FileOperation:
    content = getattr(op, "content", None)
    return content_service.FileOperation(
        action=op.action, path=op.path, previous_path=getattr(op, "previous_path", None),
        content=base64.b64decode(content) if content is not None else None, mode=getattr(op, "mode", None))


@endpoint(bp, "POST", "/v1/repos/<repo>/commits", summary="Commit file operations atomically, without a checkout",
          scope="agent", body=CreateCommit, response=CommitCreated, status=201)
def create_commit(call: Call, repo: str, body: CreateCommit):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    expected = body.expected_head_sha if "expected_head_sha" in body.model_fields_set else content_service.ANY_HEAD
    result = content_service.commit_files(
        call.session, call.context, row, call.principal, body.branch,
        [_operation(op) for op in body.operations], body.message,
        author=Identity(body.author.name, body.author.email) if body.author else None,
        intent=body.intent, expected_head=expected)
    return CommitCreated(sha=result.sha, parents=result.parents, branch=result.branch, tree=result.tree,
                         message=result.message, intent=result.intent)


@endpoint(bp, "GET", "/v1/repos/<repo>/contents/<path:path>", summary="Read a file at a revision (base64)",
          query=RefQuery, response=FileContentOut)
def get_contents(call: Call, repo: str, path: str, query: RefQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    found = content_service.read_file(call.context, row, path, query.ref, session=call.session)
    return FileContentOut(path=found.path, ref=found.ref, sha=found.commit, blob_sha=found.blob_sha,
                          size=len(found.content), mode=found.mode, type=found.type,
                          content=base64.b64encode(found.content).decode())


@endpoint(bp, "GET", "/v1/repos/<repo>/tree", summary="List a directory at a revision", query=TreeQuery,
          response=TreeOut)
def get_tree(call: Call, repo: str, query: TreeQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    listing = content_service.list_tree(call.context, row, query.path, query.ref, query.recursive,
                                         session=call.session)
    return TreeOut(ref=listing.ref, sha=listing.commit, path=listing.path, truncated=listing.truncated,
                   entries=[TreeEntryOut(**entry) for entry in listing.entries])


@endpoint(bp, "GET", "/v1/repos/<repo>/diff", summary="Diff two revisions (seed 003's diff object)",
          query=DiffQuery, response=DiffOut)
def get_diff(call: Call, repo: str, query: DiffQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    result = content_service.diff(call.context, row, query.head, query.base, full=query.format == "full",
                                  path=query.file, limits=DiffLimits(max_files=query.max_files,
                                                                     max_lines=query.max_lines),
                                  session=call.session)
    return _camel(result)
