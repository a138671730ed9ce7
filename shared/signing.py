"""Ed25519 signatures over the canonical batch header.

The header names the run (`gateway_id`, `first_seq`, `last_seq`) and the chain hashes around it
(`prev_hash`, `last_hash`); since `last_hash` chains through every event, the signature covers
every event of the batch.
"""

import base64
import binascii

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.canonical import dump_canonical
from shared.chain import verify_chain
from shared.errors import ChainBroken, InvalidSignature
from shared.events import Batch, BatchHeader


def batch_header(
    *, gateway_id: str, first_seq: int, last_seq: int, prev_hash: str, last_hash: str
) -> bytes:
    """Canonical bytes of the batch header that the gateway signs."""
    return dump_canonical(
        {
            "gateway_id": gateway_id,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "prev_hash": prev_hash,
            "last_hash": last_hash,
        }
    )


def key_rotation_statement(*, gateway_id: str, new_public_key_pem: str, issued_at: str) -> bytes:
    """Canonical bytes of a key rotation, signed with the gateway's current (old) key."""
    return dump_canonical(
        {"gateway_id": gateway_id, "new_public_key": new_public_key_pem, "issued_at": issued_at}
    )


def sign(private_key: Ed25519PrivateKey, header: bytes) -> str:
    """Sign a batch header; the signature travels base64-encoded."""
    return base64.b64encode(private_key.sign(header)).decode("ascii")


def verify(public_key: Ed25519PublicKey, header: bytes, signature: str) -> None:
    """Raise `InvalidSignature` unless `signature` is the key's signature of `header`."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, header)
    except (binascii.Error, ValueError, _CryptoInvalidSignature) as exc:
        raise InvalidSignature("batch signature does not verify under the gateway key") from exc


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as PEM text (what `tollgate-cloud gateway add` reads)."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse a PEM public key, refusing anything that is not Ed25519."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("public key is not an Ed25519 key")
    return key


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (kept mode 0600 by the edge)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Parse a PEM private key, refusing anything that is not Ed25519."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("private key is not an Ed25519 key")
    return key


def header_bytes(header: BatchHeader) -> bytes:
    """The canonical bytes a batch's signature is over."""
    return batch_header(
        gateway_id=header.gateway_id,
        first_seq=header.first_seq,
        last_seq=header.last_seq,
        prev_hash=header.prev_hash,
        last_hash=header.last_hash,
    )


def verify_header(header: BatchHeader, public_key: Ed25519PublicKey) -> None:
    """Raise `InvalidSignature` unless the header's signature is the key's (no event is read)."""
    verify(public_key, header_bytes(header), header.signature)


def verify_events(batch: Batch) -> None:
    """Recompute a batch's chain end to end and check it ends where its (signed) header says."""
    last_hash = verify_chain(batch.events, prev_hash=batch.prev_hash)
    if last_hash != batch.last_hash:
        raise ChainBroken(
            f"chain ends at {last_hash[:12]}... but the batch header says "
            f"{batch.last_hash[:12]}...",
            seq=batch.last_seq,
        )


def verify_batch(batch: Batch, public_key: Ed25519PublicKey) -> None:
    """Check a batch's signature over its header, then recompute its chain end to end."""
    verify_header(batch, public_key)
    verify_events(batch)
