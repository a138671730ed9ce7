"""The access rule of a route, as a FastAPI dependency that answers who is calling.

Every route declares one `Access` (through the `...Dep` aliases of `cloud.api`), so the rule is
part of the route itself: `access_rule(route)` reads it back, and the route x role test walks
the app's own route list, so a route added without a rule fails that test.
"""

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.gateway_requests import signed_gateway_id, verify_gateway_request
from cloud.auth.roles import INGEST_PREFIX, Rule, admits, describe, key_roles
from cloud.auth.service import live_key
from cloud.auth.share_links import open_share_link
from cloud.db import Database
from cloud.errors import Forbidden

PrincipalKind = Literal["anonymous", "key", "gateway", "share"]
_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer tg_...`")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's holder, a gateway, a share link, or nobody (public routes)."""

    kind: PrincipalKind
    scope: str | None = None
    name: str | None = None
    gateway_id: str | None = None
    invoice_id: int | None = None

    @property
    def source_id(self) -> str | None:
        """The direct source of an ingest key."""
        if self.scope is None or not self.scope.startswith(INGEST_PREFIX):
            return None
        return self.scope.removeprefix(INGEST_PREFIX)

    @property
    def label(self) -> str:
        """How the caller is named in records (`key billing-team (billing)`)."""
        if self.kind == "key":
            return f"key {self.name} ({self.scope})"
        if self.kind == "gateway":
            return f"gateway {self.gateway_id}"
        return self.kind


class Public:
    """The rule of a route anyone may call (what it receives proves itself, or it is health)."""

    rule = Rule.PUBLIC

    async def __call__(self) -> Principal:
        """Nobody in particular."""
        return Principal(kind="anonymous")


class Access:
    """The rule of a route that needs a credential."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        """The caller, or Unauthorized (no or a dead credential) / Forbidden (another role)."""
        database: Database = request.app.state.db
        async with database.transaction() as session:
            if self.rule is Rule.SHARE:
                link = await open_share_link(session=session, token=request.path_params["token"])
                return Principal(kind="share", invoice_id=link.invoice_id)
            if self.rule is Rule.GATEWAY and signed_gateway_id(request.headers) is not None:
                return await self._gateway(request, session)
            key = await live_key(session=session, secret=bearer.credentials if bearer else None)
        if not admits(self.rule, key.scope):
            roles = key_roles(self.rule)
            raise Forbidden(
                f"API key {key.prefix}… has role {key.scope!r}; {_route_name(request)} needs "
                f"{describe(roles)}",
                detail={"role": key.scope, "required": sorted(roles)},
            )
        return Principal(kind="key", scope=key.scope, name=key.name)

    async def _gateway(self, request: Request, session: AsyncSession) -> Principal:
        gateway_id = await verify_gateway_request(
            session=session,
            headers=request.headers,
            method=request.method,
            path=request.url.path,
        )
        wanted = request.path_params.get("gateway_id")
        if gateway_id != wanted:
            raise Forbidden(
                f"gateway {gateway_id!r} may read only its own chain head",
                detail={"gateway_id": gateway_id},
            )
        return Principal(kind="gateway", gateway_id=gateway_id)


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or request.url.path
    return f"{request.method} {path}"


def api_routes(app: FastAPI) -> list[RouteContext]:
    """Every API route of the app, as mounted (prefixes and router dependencies applied)."""
    return [
        context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def access_rule(route: APIRoute | RouteContext) -> Rule | None:
    """The rule a route declared, if any (found among its dependencies)."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        rule = getattr(dependant.call, "rule", None)
        if isinstance(rule, Rule):
            return rule
        pending.extend(dependant.dependencies)
    return None
