"""HTTP route of usage analytics: `GET /v1/accounts/{id}/usage` (a reading key)."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cloud.analytics.service import UsageSeries, account_usage
from cloud.api import DatabaseDep, ReadDep, error_responses

router = APIRouter(prefix="/v1", tags=["analytics"])


@router.get("/accounts/{account_id}/usage", responses=error_responses(401, 403, 404, 422))
async def get_usage(
    account_id: str,
    db: DatabaseDep,
    _: ReadDep,
    metric: Annotated[str, Query(min_length=1, max_length=64)],
    granularity: Annotated[str, Query(description="hour, day or month")] = "day",
    start: Annotated[datetime | None, Query(description="RFC 3339, inclusive")] = None,
    end: Annotated[datetime | None, Query(description="RFC 3339, exclusive")] = None,
) -> dict[str, Any]:
    """The metric per local hour, day or month of the account's time zone over [start, end).

    Default range: the account's current local month. Values are decimal strings.
    """
    async with db.transaction() as session:
        series = await account_usage(
            session=session,
            account_id=account_id,
            metric_id=metric,
            granularity=granularity,
            start=start,
            end=end,
            as_of=datetime.now(UTC),
        )
    return usage_document(series)


def usage_document(series: UsageSeries) -> dict[str, Any]:
    """The JSON answer: buckets as UTC ISO 8601 bounds and decimal-string values."""
    return {
        "account_id": series.account_id,
        "metric": series.metric,
        "time_zone": series.time_zone,
        "granularity": series.granularity.value,
        "buckets": [
            {
                "start": point.start.isoformat(),
                "end": point.end.isoformat(),
                "value": str(point.value),
            }
            for point in series.points
        ],
    }
