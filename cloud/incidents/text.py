"""Text an incident may store: it quotes what was refused, which may hold what no database can."""

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with U+0000 and lone surrogates shown as U+FFFD: an incident quotes what it
    refused, and what it refused may hold what the database cannot store."""
    return _UNSTORABLE.sub("\ufffd", text)
