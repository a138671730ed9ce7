"""The OpenAPI document declares every status a route can answer, each with the error body.

Routers declare the errors of their own domain (`error_responses(404, 409)`); what every route
shares is added here from the route itself, so it cannot be forgotten: 401 and 403 where the
route's access rule needs a credential, 404 where a path names a resource, 422 where there are
parameters or a body, 400 where a body may fail to decode, and 500 and 503 everywhere (an
unexpected fault, a database that cannot be reached). FastAPI's own 422 schema
(`HTTPValidationError`) is replaced by our error body, which is what the collector answers.
"""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.routing import RouteContext

from cloud.api import ErrorBody
from cloud.auth.access import access_rule, api_routes
from cloud.auth.roles import Rule

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def document_answers(app: FastAPI) -> None:
    """Make `app.openapi()` declare the shared statuses of every route."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        _add_error_schemas(schema)
        for route in api_routes(app):
            if not route.include_in_schema:  # the console's pages, /docs and /redoc
                continue
            for method in route.methods or ():
                operation = schema["paths"][route.path_format][method.lower()]
                _declare(operation, statuses_of(route))
        schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def statuses_of(route: RouteContext) -> set[int]:
    """The error statuses every route of this shape can answer."""
    statuses = {500, 503}
    rule = access_rule(route)
    if rule is not None and rule is not Rule.PUBLIC:
        statuses |= {401, 403}
    if route.dependant.path_params:
        statuses.add(404)
    dependant = route.dependant
    if dependant.path_params or dependant.query_params or dependant.body_params:
        statuses.add(422)
    if dependant.body_params:
        statuses.add(400)  # a body that is not UTF-8 JSON at all
    return statuses


def _declare(operation: dict[str, Any], statuses: set[int]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
    for code, response in responses.items():
        if str(code).startswith(("4", "5")):
            response["content"] = {"application/json": {"schema": _ERROR_REF}}


def _add_error_schemas(schema: dict[str, Any]) -> None:
    document = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = document.pop("$defs", {})
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions)
    schemas["ErrorBody"] = document
