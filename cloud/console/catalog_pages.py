"""Catalog: plans with versions and diffs, metrics with their matches, profiles; changes previewed,
saved as new versions.
"""

from fastapi import APIRouter

router = APIRouter(prefix="/console/catalog", include_in_schema=False)
