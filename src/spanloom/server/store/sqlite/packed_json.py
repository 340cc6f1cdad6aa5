"""A span's attributes and events as stored: their JSON, deflated when that makes it smaller.

After the texts and the typed columns' values are taken out (span_texts.py,
column_attributes.py), an LLM span's attributes are still a few hundred bytes of JSON keys and
message fields that repeat within the text (`llm.input_messages.N.message.role`...): deflate
takes ~40% off them. Only Python reads these columns (span_reads.py), never SQL, so a deflated
value is stored as a BLOB and a plain one as TEXT, and the type tells them apart: rows written
before are read as they are.
"""

from __future__ import annotations

import zlib
from typing import Any

from spanloom.server.store.json_values import from_json

# Shorter JSON is stored as it is: deflate saves little on it, for the time it takes.
PACK_MIN = 128
# A 1 KiB window and a small hash table: the JSON is a few hundred bytes, and zlib's default
# state (256 KiB) took 8x longer to set up than to deflate such a text.
_WINDOW_BITS, _MEMORY_LEVEL, _LEVEL = -10, 2, 6


def pack(text: str) -> str | bytes:
    """`text` (JSON) deflated (raw deflate, no header) when that is shorter, else as it is."""
    if len(text) < PACK_MIN:
        return text
    data = text.encode()
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WINDOW_BITS, _MEMORY_LEVEL)
    packed = packer.compress(data) + packer.flush()
    return packed if len(packed) < len(data) else text


def unpack(value: str | bytes) -> Any:
    """The value `pack` stored (or plain JSON text), parsed."""
    if isinstance(value, bytes):
        # The widest window reads any narrower.
        value = zlib.decompress(value, -zlib.MAX_WBITS).decode()
    return from_json(value)
