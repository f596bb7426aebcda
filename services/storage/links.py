"""Whether a link a caller gives may read its key: one this service issued, and not expired.

The gateway reads links into our bucket by key (Storage.Get), not over HTTP, so S3 never checks
them; this does instead, as S3 would: a presigned GET is signed again here for the same bucket,
key, X-Amz-Date and X-Amz-Expires with this service's own credentials, and its X-Amz-Signature
must match (constant-time) and its expiry must not have passed. An unsigned link is accepted only
under the configured public base URL, where the objects are public anyway (those are the only
unsigned links this service hands out); any other is refused. No link (empty): a mesh service
reading its own object by key, as it may write and delete them.
"""

from __future__ import annotations

import datetime
import hmac
import time
import urllib.parse
from collections.abc import Callable

from services.common.errors import PermissionDenied
from services.storage.settings import MAX_PRESIGN_SECONDS

# presign(key, expires_seconds, request_date) -> the presigned GET this service would issue.
Presign = Callable[[str, int, datetime.datetime], str]

_AMZ_DATE = "%Y%m%dT%H%M%SZ"


class LinkRefused(PermissionDenied):
    """A link that is not ours or has expired (the servicer sends the trailer
    `imagemesh-reason: link-refused`, which the gateway answers with 403)."""

    reason = "link-refused"


class LinkChecker:
    def __init__(self, public_base_url: str, presign: Presign) -> None:
        self._public = public_base_url.rstrip("/") + "/" if public_base_url else ""
        self._presign = presign

    def check(self, key: str, url: str, now: float | None = None) -> None:
        """Returns when `url` may read `key`; raises `LinkRefused` saying why otherwise."""
        if not url:
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        signature = _one(query, "X-Amz-Signature")
        if not signature:
            if self._public and url.startswith(self._public):
                return
            raise LinkRefused(
                f"the link to {key!r} is not signed and this bucket is private; use the link "
                "the image was answered with (a task's result gives a fresh one) or send the image"
            )
        signed_at, expires = self._fields(key, query)
        try:
            end = signed_at + datetime.timedelta(seconds=expires)
        except OverflowError:
            raise _not_ours(key) from None
        if (now if now is not None else time.time()) > end.timestamp():
            raise LinkRefused(
                f"the link to {key!r} expired at {end:%Y-%m-%d %H:%M:%S} UTC; use a fresh link "
                "(a task's result answers one) or send the image itself"
            )
        try:
            ours = self._presign(key, expires, signed_at)
        except ValueError:
            raise _not_ours(key) from None
        expected = _one(urllib.parse.parse_qs(urllib.parse.urlsplit(ours).query), "X-Amz-Signature")
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _not_ours(key)

    @staticmethod
    def _fields(key: str, query: dict[str, list[str]]) -> tuple[datetime.datetime, int]:
        try:
            signed_at = datetime.datetime.strptime(_one(query, "X-Amz-Date"), _AMZ_DATE)
            expires = int(_one(query, "X-Amz-Expires"))
        except ValueError:
            raise _not_ours(key) from None
        if not 0 < expires <= MAX_PRESIGN_SECONDS:
            raise _not_ours(key)
        return signed_at.replace(tzinfo=datetime.UTC), expires


def _one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[0]


def _not_ours(key: str) -> LinkRefused:
    return LinkRefused(
        f"the link to {key!r} is not one we issued (its signature does not match); use the "
        "link the image was answered with, unchanged, or send the image itself"
    )
