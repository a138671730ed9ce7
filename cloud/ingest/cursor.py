"""The keyset cursor of `GET /v1/events`: the `(gateway_id, seq)` of the last event served."""

import base64
import binascii
from dataclasses import dataclass
from typing import Self

import orjson

from cloud.errors import InvalidParameters


@dataclass(frozen=True)
class EventCursor:
    """A position in the `(gateway_id, seq)` order; opaque (URL-safe base64 JSON) to clients."""

    gateway_id: str
    seq: int

    def encode(self) -> str:
        """The opaque text clients pass back as `cursor=`."""
        return base64.urlsafe_b64encode(orjson.dumps([self.gateway_id, self.seq])).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Self:
        """Parse a cursor given by a client; `InvalidParameters` if it is not one of ours."""
        try:
            gateway_id, seq = orjson.loads(base64.urlsafe_b64decode(text.encode("ascii")))
        except (
            binascii.Error,
            UnicodeEncodeError,
            orjson.JSONDecodeError,
            TypeError,
            ValueError,
        ) as exc:
            raise _invalid(text) from exc
        if not isinstance(gateway_id, str) or type(seq) is not int:
            raise _invalid(text)
        return cls(gateway_id=gateway_id, seq=seq)


def _invalid(text: str) -> InvalidParameters:
    return InvalidParameters(
        "cursor is not a value returned as next_cursor",
        detail={
            "errors": [{"loc": ["query", "cursor"], "msg": "invalid cursor", "input": text[:100]}]
        },
    )
