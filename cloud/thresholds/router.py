"""HTTP routes of usage thresholds: add, pause, resume and remove (billing key), list (reading
key).

The account's routes live under /v1/accounts/{account_id}/thresholds; the app includes this
router before the catalog's, whose /v1/accounts/{account_id} routes sit beside them.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from cloud.api import BillingDep, DatabaseDep, ReadDep, RowId, error_responses
from cloud.catalog.checks import SLUG_PATTERN
from cloud.thresholds.schemas import ThresholdCreate, ThresholdOut
from cloud.thresholds.service import (
    create_threshold,
    delete_threshold,
    list_thresholds,
    set_threshold_enabled,
)

router = APIRouter(prefix="/v1", tags=["thresholds"])
AUTH = (401, 403)
AccountId = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]


@router.post(
    "/accounts/{account_id}/thresholds",
    status_code=201,
    responses=error_responses(*AUTH, 404, 422),
)
async def post_threshold(
    account_id: AccountId, body: ThresholdCreate, db: DatabaseDep, _: BillingDep
) -> ThresholdOut:
    """Add a threshold: `usage.threshold_reached` fires once per period when it is reached."""
    async with db.transaction(write=True) as session:
        row = await create_threshold(
            session=session,
            account_id=account_id,
            metric_id=body.metric_id,
            measure=body.measure,
            value=body.value,
            now=datetime.now(UTC),
        )
        return ThresholdOut.of(row)


@router.get("/accounts/{account_id}/thresholds", responses=error_responses(*AUTH, 404, 422))
async def get_thresholds(account_id: AccountId, db: DatabaseDep, _: ReadDep) -> list[ThresholdOut]:
    """The account's thresholds in id order, each with the latest period it fired in."""
    async with db.transaction() as session:
        rows = await list_thresholds(session=session, account_id=account_id)
        return [ThresholdOut.of(row, last) for row, last in rows]


@router.delete("/thresholds/{threshold_id}", status_code=204, responses=error_responses(*AUTH, 404))
async def remove_threshold(threshold_id: RowId, db: DatabaseDep, _: BillingDep) -> None:
    """Remove a threshold and its firings (messages already emitted stay in the webhook log)."""
    async with db.transaction(write=True) as session:
        await delete_threshold(session=session, threshold_id=threshold_id)


@router.post("/thresholds/{threshold_id}/disable", responses=error_responses(*AUTH, 404))
async def disable_threshold(threshold_id: RowId, db: DatabaseDep, _: BillingDep) -> ThresholdOut:
    """Pause a threshold: it is not checked and does not fire until enabled again."""
    async with db.transaction(write=True) as session:
        row = await set_threshold_enabled(session=session, threshold_id=threshold_id, enabled=False)
        return ThresholdOut.of(row)


@router.post("/thresholds/{threshold_id}/enable", responses=error_responses(*AUTH, 404))
async def enable_threshold(threshold_id: RowId, db: DatabaseDep, _: BillingDep) -> ThresholdOut:
    """Resume a paused threshold (it fires this period if reached and not fired yet)."""
    async with db.transaction(write=True) as session:
        row = await set_threshold_enabled(session=session, threshold_id=threshold_id, enabled=True)
        return ThresholdOut.of(row)
