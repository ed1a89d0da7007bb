"""Organization slugs that can never exist: the first path segment of the control API's own routes, so a git
URL /{org}/{repo}.git/... can never be confused with one of them."""
RESERVED_ORG_SLUGS = frozenset({"v1", "api", "healthz", "readyz", "openapi.json", "static", "admin", "internal"})
