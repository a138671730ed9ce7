"""The console's areas, each an APIRouter of its own module `cloud/console/<area>_pages.py`
(prefix /console/<area>, templates in templates/<area>/); the nav of templates/base.html
links each one that has an index page.
"""

from dataclasses import dataclass

from fastapi import APIRouter

from cloud.console import (
    accounts_pages,
    catalog_pages,
    devices_pages,
    invoices_pages,
    quality_pages,
)


@dataclass(frozen=True, slots=True)
class Area:
    """One console area: its nav label, its index page and its routes."""

    label: str
    path: str
    router: APIRouter


AREAS = (
    Area("Accounts", "/console/accounts", accounts_pages.router),
    Area("Devices", "/console/devices", devices_pages.router),
    Area("Invoices", "/console/invoices", invoices_pages.router),
    Area("Catalog", "/console/catalog", catalog_pages.router),
    Area("Data quality", "/console/quality", quality_pages.router),
)

AREA_ROUTERS = [area.router for area in AREAS]
"""Included by `install_console` after the console's own routes."""


def nav() -> list[Area]:
    """The areas that serve an index page (GET /console/<area>), in nav order."""
    return [
        area
        for area in AREAS
        if any(
            getattr(route, "path", None) == area.path and "GET" in getattr(route, "methods", ())
            for route in area.router.routes
        )
    ]
