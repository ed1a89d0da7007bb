from .accounts import SCOPES, ApiKey, Organization
from .base import Base, utcnow
from .collab import PathLock, Stack, StackReview, Workspace, WorkspaceFile
from .events import Event
from .extensions import Extension, ExtensionRun
from .projects import Artifact, ProjectFile, ProjectSpec
from .rate_limits import RateWindow
from .remotes import Remote
from .repos import Branch, BranchProtection, Repository
from .uploads import CommitMeta, Upload, UploadFile
from .webhooks import Webhook, WebhookDelivery

__all__ = [
    "SCOPES", "ApiKey", "Organization", "Base", "utcnow", "Event", "Branch", "BranchProtection", "Repository",
    "CommitMeta", "Upload", "UploadFile", "Extension", "ExtensionRun", "ProjectFile", "ProjectSpec", "Artifact",
    "PathLock", "Stack", "StackReview", "Workspace", "WorkspaceFile", "Webhook", "WebhookDelivery",
    "RateWindow", "Remote",
]
