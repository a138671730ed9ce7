"""Data quality: incidents with filters and evidence; acknowledge and resolve."""

from fastapi import APIRouter

router = APIRouter(prefix="/console/quality", include_in_schema=False)
