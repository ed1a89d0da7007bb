"""POST /v1/repos/{repo}/merges: merge a branch into another (merge commit, squash or rebase), or check that it
would merge (dry run).

The request and response use seed 003's merge names as written there (`dry_run`, `deleteBranch`;
`head_commit`, `already_merged`), not the camelCase of the other /v1 resources, so a client written from seed 003
works unchanged; `dryRun` is accepted as well. A merge that conflicts is a normal answer, not an error: 200 with
`success: false` and every conflicting path in `conflicts` (what seed 003 clients read), and nothing changed.
Errors keep the Driftstone envelope: 404 unknown repository or branch, 409 `stale_ref` when `expectedTargetHead`
no longer matches, 409 `conflict` for branches without common history, 422 bad input.
"""
from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from control.services import merges as merge_service
from control.services import repos as repo_service

from ..endpoint import Call, endpoint
from .common import BRANCH_NAME_PATTERN

bp = Blueprint("merges", __name__)
SHA_PATTERN = r"^[0-9a-f]{40}$"


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(min_length=1, max_length=255, json_schema_extra={"pattern": BRANCH_NAME_PATTERN},
                        description="The branch to merge.")
    target: str | None = Field(default=None, min_length=1, max_length=255,
                               json_schema_extra={"pattern": BRANCH_NAME_PATTERN},
                               description="The branch to merge into; defaults to the repository's default branch.")
    strategy: Literal["merge", "squash", "rebase"] = Field(
        default="merge", description="merge: a merge commit; squash: one commit on the target; rebase: the "
                                     "source's commits replayed onto the target.")
    dry_run: bool = Field(default=False, validation_alias=AliasChoices("dry_run", "dryRun"),
                          description="Only check whether the merge would succeed; change nothing.")
    message: str | None = Field(default=None, min_length=1, max_length=65536, pattern=r"^[^\x00]*$",
                                description="Message of the merge or squash commit (rebase keeps each commit's); "
                                            "no NUL characters.")
    delete_branch: bool = Field(default=False, validation_alias=AliasChoices("deleteBranch", "delete_branch"),
                                description="Delete the source branch after a successful merge.")
    expected_target_head: str | None = Field(
        default=None, pattern=SHA_PATTERN, validation_alias=AliasChoices("expectedTargetHead", "expected_target_head"),
        description="Merge only if the target still points at this commit (else 409 stale_ref).")
    fast_forward: bool = Field(default=False, validation_alias=AliasChoices("fastForward", "fast_forward"),
                               description="strategy merge: move the target to the source instead of creating a "
                                           "merge commit when the target has no commits of its own.")

    @field_validator("message")
    @classmethod
    def _encodable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("a commit message must be valid Unicode") from None
        return value


class MergeOut(BaseModel):
    success: bool
    sha: str | None
    head_commit: str | None
    already_merged: bool
    target: str
    conflicts: list[str]
    message: str


@endpoint(bp, "POST", "/v1/repos/<repo>/merges", summary="Merge a branch into another (or check it would merge)",
          scope="agent", body=MergeRequest, response=MergeOut)
def create_merge(call: Call, repo: str, body: MergeRequest):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    outcome = merge_service.merge_branch(call.session, call.context, row, call.principal, body.source, body.target,
                                         body.strategy, body.message, body.dry_run, body.delete_branch,
                                         body.expected_target_head, body.fast_forward)
    return merge_out(outcome)


def merge_out(outcome) -> MergeOut:
    """A merge's answer in seed 003's fields (this route and hoody's merge of a branch)."""
    return MergeOut(success=outcome.success, sha=outcome.sha, head_commit=outcome.head_commit,
                    already_merged=outcome.already_merged, target=outcome.target, conflicts=outcome.conflicts,
                    message=outcome.message)
