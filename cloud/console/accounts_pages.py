"""Accounts: search, devices and bindings on a timeline, usage per metric, cost so far, drafts and
invoices.
"""

from fastapi import APIRouter

router = APIRouter(prefix="/console/accounts", include_in_schema=False)
