"""HTTP routes of this package (admin API key required)."""

from fastapi import APIRouter

router = APIRouter(tags=["catalog"])
