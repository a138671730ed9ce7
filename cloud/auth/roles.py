"""Who may call what: roles of API keys and the access rule every route declares.

    role               may
    admin              everything a key can do (sources, source keys, and all below)
    billing            the catalog, invoice runs, finalize, discard, share links, and all reads
    viewer             reads only
    ingest:<source>    send that direct source's CloudEvents and files, nothing else

Two credentials are not keys: a gateway signs a request with its own Ed25519 key to read its own
chain head (for resync), and a share link's token opens one invoice's page and evidence.
"""

from enum import StrEnum


class Role(StrEnum):
    """The roles of API keys (besides `ingest:<source>`)."""

    ADMIN = "admin"
    BILLING = "billing"
    VIEWER = "viewer"


INGEST_PREFIX = "ingest:"


class Rule(StrEnum):
    """The access rule of a route: which credentials may call it."""

    PUBLIC = "public"  # health, enrollment codes, signed batches and signed key rotations
    READ = "read"  # viewer, billing, admin
    BILLING = "billing"  # billing, admin
    ADMIN = "admin"  # admin
    INGEST = "ingest"  # an ingest:<source> key (the route checks which source)
    IMPORT = "import"  # admin, or the ingest key of the file's source
    GATEWAY = "gateway"  # the gateway named in the path (signed request), or a READ key
    SHARE = "share"  # a live share link's token in the path


_KEY_ROLES: dict[Rule, frozenset[str]] = {
    Rule.READ: frozenset({Role.VIEWER, Role.BILLING, Role.ADMIN}),
    Rule.BILLING: frozenset({Role.BILLING, Role.ADMIN}),
    Rule.ADMIN: frozenset({Role.ADMIN}),
    Rule.INGEST: frozenset({INGEST_PREFIX}),
    Rule.IMPORT: frozenset({Role.ADMIN, INGEST_PREFIX}),
    Rule.GATEWAY: frozenset({Role.VIEWER, Role.BILLING, Role.ADMIN}),
}


def key_roles(rule: Rule) -> frozenset[str]:
    """The key roles `rule` admits (`ingest:` stands for every ingest key); empty if none."""
    return _KEY_ROLES.get(rule, frozenset())


def admits(rule: Rule, scope: str) -> bool:
    """Whether a key of `scope` may call a route of `rule`."""
    roles = key_roles(rule)
    if scope.startswith(INGEST_PREFIX):
        return INGEST_PREFIX in roles
    return scope in roles


def check_scope(scope: str) -> str:
    """`scope` if it names a role or an ingest source; else ValueError."""
    if scope in set(Role) or (scope.startswith(INGEST_PREFIX) and len(scope) > len(INGEST_PREFIX)):
        return scope
    raise ValueError(f"unknown role {scope!r}: admin, billing, viewer or ingest:<source>")


def describe(roles: frozenset[str]) -> str:
    """`billing or admin`, for messages."""
    names = sorted(("an ingest key" if r == INGEST_PREFIX else r) for r in roles)
    return " or ".join(names)
