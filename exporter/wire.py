"""What comes off the wire from a vendor, bounded: response bodies under a byte cap, and JSON
under a nesting cap, decoded to valid text.

The cap is counted twice. Every response the client receives (an auth flow's 401 included,
which httpx reads by itself) gets a stream that fails past the cap on the bytes as sent
(``cap_response``, an httpx response hook); the body a call reads is counted again after
decompression (``read_body``), so that a small gzip body cannot inflate past the cap either.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any, Final

import httpx

# The request extension that carries a call's cap to the response hook.
BODY_LIMIT: Final = "saas_backup_max_body_bytes"
# Vendor answers nest a handful of levels (Datto's applications: ten). Python's JSON decoder
# recurses per level and fails with RecursionError near a thousand.
MAX_JSON_DEPTH: Final = 64

# Every byte but quotes and brackets, deleted before the nesting is measured; braces become
# brackets (a document that mixes them up is refused by the decoder anyway).
_NOT_STRUCTURE: Final = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_BRACKETS: Final = bytes.maketrans(b"{}", b"[]")
_STRING = re.compile(rb'"[^"]*"')


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit} bytes")
        self.limit = limit


class NotJson(ValueError):
    """The body is not JSON this exporter reads; the message says why and quotes nothing."""


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise BodyTooLarge(self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


async def cap_response(response: httpx.Response) -> None:
    """An httpx response hook: the body of a request that carries a cap fails past it."""
    limit = response.request.extensions.get(BODY_LIMIT)
    if isinstance(limit, int) and isinstance(response.stream, httpx.AsyncByteStream):
        response.stream = _CappedStream(response.stream, limit)


def declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


async def read_body(response: httpx.Response, limit: int) -> bytearray:
    """The decoded body of a streamed response; BodyTooLarge past ``limit`` bytes, before
    reading any of it when the response declares a larger length."""
    declared = declared_length(response)
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower()
    if declared is not None and declared > limit and encoded in ("", "identity"):
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge(limit)
        body += chunk
    return body


def too_deep(data: bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects more than ``limit`` deep. Text that is not
    well bracketed is not too deep: the decoder rejects it for what it is."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    # Escaped backslashes, then escaped quotes, go first (backslashes occur only in strings);
    # then all but quotes and brackets. Two quotes in a row are then an empty string or the
    # seam between two strings: dropping them keeps every bracket inside or outside a string
    # where it was. The strings left hold only brackets; dropping them leaves the structure.
    # All of it runs at memchr speed, unlike a scan in Python or one regex over the text.
    skeleton = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = skeleton.translate(_BRACKETS, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = _STRING.sub(b"", skeleton)
    # Each pass removes the innermost pairs, one level: a document empties in `depth` passes.
    for _ in range(limit):
        if not brackets:
            return False
        fewer = brackets.replace(b"[]", b"")
        if fewer == brackets:
            return False
        brackets = fewer
    return bool(brackets)


def decode_json(data: bytes | bytearray) -> tuple[Any, bool]:
    """The document, and whether bytes that were not UTF-8 had to be replaced (U+FFFD) to read
    it. NotJson when it is not JSON or nests too deep."""
    if too_deep(data):
        raise NotJson(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    encoding = json.detect_encoding(data)
    replaced = False
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text, replaced = data.decode(encoding, "replace"), True
    try:
        return json.loads(text), replaced
    except RecursionError:
        raise NotJson(f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:
        raise NotJson("response is not valid JSON") from None
