"""Invoices: by period and status, runs with live progress, lines with their explanation and
evidence, finalize.
"""

from fastapi import APIRouter

router = APIRouter(prefix="/console/invoices", include_in_schema=False)
