"""Errors raised by the event contract.

ContractError
 ├── MalformedBatch     the batch's shape is wrong (counts, seq run, gateway ids)
 ├── ChainBroken        a hash does not match the recomputed SHA-256 chain
 ├── InvalidSignature   the Ed25519 signature does not match the batch header (or heartbeat)
 └── MalformedHeartbeat a heartbeat envelope is too large, not JSON, or not the contract's shape
"""


class ContractError(Exception):
    """Root of the errors the shared event contract raises."""


class MalformedBatch(ContractError):
    """The batch is not a contiguous run of one gateway's events."""


class ChainBroken(ContractError):
    """A hash in the batch does not match the recomputed chain."""

    def __init__(self, message: str, *, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class InvalidSignature(ContractError):
    """The batch signature does not verify under the gateway's public key."""


class MalformedHeartbeat(ContractError):
    """A heartbeat envelope that is too large, not JSON, or not the contract's shape."""
