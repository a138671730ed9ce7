"""Devices: the twin, sessions on a timeline with their close reasons, events with their place in
the chain.
"""

from fastapi import APIRouter

router = APIRouter(prefix="/console/devices", include_in_schema=False)
