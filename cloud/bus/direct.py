"""Direct sources through the log: placeholder until the direct path is appended (see docs)."""

from cloud.db import Database


async def store_direct_message(db: Database, body: bytes) -> int:
    """Store one direct append; the number of new events."""
    raise NotImplementedError("direct appends are not written yet")
