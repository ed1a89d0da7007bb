"""/v1/repos/{repo}/branch-protections: protected branch patterns (GitHub's): no force push, no deletion unless
allowed; optionally changes only through a stack's merge (`requirePullRequest`) and approving reviews a stack needs
before it merges (`requiredApprovals`). Admin keys set them; every key that sees the repository reads them."""
from __future__ import annotations

from flask import Blueprint
from pydantic import Field

from control.services import repos as repo_service

from ..endpoint import Call, endpoint
from .common import Timestamp, WholeListQuery, WireModel, whole_or_page

bp = Blueprint("protections", __name__)
RULES = "/v1/repos/<repo>/branch-protections"


class PutRule(WireModel):
    pattern: str = Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
                         description="GitHub's: `*` stops at '/', `**` crosses it; the strictest matching rule holds")
    allow_force_push: bool = False
    allow_deletion: bool = False
    require_pull_request: bool = False
    required_approvals: int = Field(default=0, ge=0, le=10)


class RuleOut(WireModel):
    id: str
    pattern: str
    allow_force_push: bool
    allow_deletion: bool
    require_pull_request: bool
    required_approvals: int
    created_at: Timestamp


class RuleDeleted(WireModel):
    id: str
    deleted: bool = True


def rule_out(rule) -> RuleOut:
    return RuleOut(id=rule.id, pattern=rule.pattern, allow_force_push=rule.allow_force_push,
                   allow_deletion=rule.allow_deletion, require_pull_request=rule.require_pull_request,
                   required_approvals=rule.required_approvals, created_at=rule.created_at)


@endpoint(bp, "GET", RULES, summary="List the repository's protected branch patterns", query=WholeListQuery,
          response=list[RuleOut], paginated=True)
def list_rules(call: Call, repo: str, query: WholeListQuery):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    return whole_or_page(repo_service.protection_rules(call.session, row), query, rule_out)


@endpoint(bp, "PUT", RULES, summary="Protect branches matching a pattern (the pattern's rule made or replaced)",
          scope="admin", body=PutRule, response=RuleOut, errors={409: "The repository has its most rules"})
def put_rule(call: Call, repo: str, body: PutRule):
    row = repo_service.visible_repo(call.session, call.principal, repo)
    return rule_out(repo_service.protect_branch(call.session, row, body.pattern, body.allow_force_push,
                                                body.allow_deletion, body.require_pull_request,
                                                body.required_approvals))


@endpoint(bp, "DELETE", RULES + "/<rule_id>", summary="Remove a protection rule", scope="admin",
          response=RuleDeleted)
def delete_rule(call: Call, repo: str, rule_id: str):
    repo_service.unprotect_branch(call.session, repo_service.visible_repo(call.session, call.principal, repo),
                                  rule_id)
    return RuleDeleted(id=rule_id)
