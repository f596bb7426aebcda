"""HTTP to a hosted provider: one pooled client per provider, retries, and error mapping.

Every adapter (plug-ins too) talks to its provider through an `Upstream`: it owns an
`httpx.AsyncClient` (base URL, auth headers, connection pool), bounds each request by the
provider timeout and the caller's deadline, retries transient failures with `tenacity` (5xx,
408, timeouts, refused connections, and a 429 whose Retry-After is short) honouring Retry-After,
and turns whatever failed into a `ServiceError` a person can act on:

| upstream | status |
|---|---|
| 400 / 404 / 413 / 422 | INVALID_ARGUMENT with the provider's message |
| 401 | FAILED_PRECONDITION "OPENAI_API_KEY rejected by OpenAI: ..." |
| 403 | FAILED_PRECONDITION (region, plan or model not enabled) |
| 429 | RESOURCE_EXHAUSTED (retry_after set) |
| 408 / 5xx / timeout / connection refused | UNAVAILABLE |
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from tenacity import AsyncRetrying, retry_if_exception

from services.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ProviderFailed,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from services.providers import deadline
from services.providers.settings import ProvidersSettings

log = logging.getLogger("imagemesh.providers.upstream")

T = TypeVar("T")


class Transient(Unavailable):
    """A failure worth another attempt (5xx, timeout, refused connection)."""


class RateLimited(ResourceExhausted):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After (seconds or HTTP date), or OpenAI's retry-after-ms; None when absent or not a
    number. A hint is never negative and at most `MAX_RETRY_HINT_SECONDS` (`inf` or 1e400 from
    an upstream is no reason to overflow, or to make a client wait for ever)."""
    if value := headers.get("retry-after-ms"):
        seconds = _finite(value)
        if seconds is not None:
            return _bounded(seconds / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return _bounded(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive
        when = when.replace(tzinfo=dt.UTC)
    return _bounded((when - dt.datetime.now(dt.UTC)).total_seconds())


# One day: past it, a hint says "not soon" as well as any larger number.
MAX_RETRY_HINT_SECONDS = 86400.0


def _finite(text: str) -> float | None:
    try:
        seconds = float(text)
    except ValueError:
        return None
    # inf is "a long time" (bounded below); NaN and -inf say nothing.
    return None if math.isnan(seconds) or seconds == -math.inf else seconds


def _bounded(seconds: float) -> float:
    return min(max(0.0, seconds), MAX_RETRY_HINT_SECONDS)


def error_fields(body: bytes) -> tuple[str, str]:
    """(message, code) from any of the providers' error bodies; empty strings when unknown.

    OpenAI and compatible modes: {"error": {message, code}}; DashScope native:
    {code, message}; LiblibAI: {code, msg}. The message goes on to our callers, so anything in
    it that looks like a key (OpenAI quotes part of a wrong one) is replaced by `[redacted]`.
    """
    message, code = _error_fields(body)
    return redact(message), code


# What an upstream's message may quote of a credential: `sk-...`-style keys (OpenAI shows the
# first and last characters of a wrong one), a bearer token, `api_key: ...` / `AccessKey=...`.
_KEYLIKE = re.compile(
    r"\b(?:sk|ak|pk|rk)-[A-Za-z0-9_*.\-]{3,}"
    r"|(?i:bearer)\s+\S+"
    r"|\b(?i:(?:api[_ -]?key|access[_ -]?key|secret[_ -]?key|token)\b[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{4,}"
)


def redact(text: str) -> str:
    """`text` with every key-like token replaced by `[redacted]`."""
    return _KEYLIKE.sub("[redacted]", text)


def _error_fields(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return text[:300], ""
    if not isinstance(data, dict):
        return str(data)[:300], ""
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or "").strip(), str(err.get("code") or err.get("type") or "")
    if isinstance(err, str):
        return err.strip(), ""
    message = data.get("message") or data.get("msg") or ""
    return str(message).strip(), str(data.get("code") or "")


class _NoCookies(httpx.Cookies):
    """Provider APIs authenticate by key and keep no session: no cookie is stored or sent.
    httpx would otherwise parse every answer into its cookie jar (about 0.25 ms of CPU)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class Upstream:
    """One provider's HTTP client. `label` names it in messages ("OpenAI"); `key_env` is the
    variable to blame when the key is rejected ("OPENAI_API_KEY")."""

    def __init__(
        self,
        settings: ProvidersSettings,
        *,
        label: str,
        base_url: str,
        key_env: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.label = label
        self.base_url = base_url
        self.key_env = key_env
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        self._aiohttp = (
            AiohttpTransport(limits=limits) if settings.http_transport == "aiohttp" else None
        )
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(
                settings.request_timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=limits,
            # httpx's API over aiohttp's pool: httpcore + anyio cost about 1 ms more CPU per
            # call, the largest item on the forwarding path (bench/providers.py).
            transport=self._aiohttp,
            follow_redirects=False,
        )
        # httpx has no public hook for the jar's class (and is pinned exactly).
        self.client._cookies = _NoCookies()
        # What httpx would send, for the requests that skip it (`json`). Accept-Encoding: what
        # aiohttp decodes itself.
        self._direct_headers = {
            **self.client.headers,
            "accept-encoding": "gzip, deflate",
            "content-type": "application/json",
        }

    async def aclose(self) -> None:
        await self.client.aclose()

    def timeout(self) -> httpx.Timeout:
        total = deadline.budget(self.settings.request_timeout_seconds, self.label)
        return httpx.Timeout(total, connect=min(total, self.settings.connect_timeout_seconds))

    # -- errors --------------------------------------------------------------------------------

    def error_for(
        self, status: int, message: str, code: str = "", retry_after: float | None = None
    ) -> ServiceError:
        """The ServiceError for an upstream answer with this HTTP status and error body."""
        detail = message or f"HTTP {status}"
        if code and code.lower() not in detail.lower():
            detail = f"{detail} ({code})"
        if status == 401:
            return FailedPrecondition(f"{self.key_env} rejected by {self.label}: {detail}")
        if status == 403:
            return FailedPrecondition(f"{self.label} refused the request: {detail}")
        if status == 429:
            hint = f"; retry after {retry_after:.0f} s" if retry_after else ""
            return RateLimited(f"{self.label} rate limit: {detail}{hint}", retry_after)
        if status == 408 or status >= 500:
            return Transient(f"{self.label} is unavailable (HTTP {status}): {detail}")
        if 400 <= status < 500:
            return InvalidArgument(f"{self.label} rejected the request: {detail}")
        return ProviderFailed(f"{self.label} answered HTTP {status}: {detail}")

    def response_error(self, response: httpx.Response) -> ServiceError:
        return self._answer_error(response.status_code, response.content, response.headers)

    def _answer_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ServiceError:
        message, code = error_fields(body)
        return self.error_for(status, message, code, retry_after_seconds(headers))

    def transport_error(self, exc: httpx.TransportError) -> ServiceError:
        # The aiohttp transport maps every connection error to ConnectTimeout; the cause tells
        # a real timeout (a TimeoutError) from a refused or dropped connection.
        cause = exc.__cause__
        if isinstance(exc, httpx.TimeoutException) and (
            cause is None or isinstance(cause, TimeoutError)
        ):
            left = deadline.remaining()
            if left is not None and left <= 0.05:
                return DeadlineExceeded(f"deadline passed while waiting for {self.label}")
            return Transient(f"{self.label} did not answer in time ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError) or isinstance(cause, OSError):
            return Transient(f"cannot reach {self.label} at {self.base_url}: {cause or exc}")
        detail = f"{type(cause).__name__}: {cause}" if cause else f"{type(exc).__name__}: {exc}"
        return Transient(f"{self.label} connection failed: {detail}")

    # -- retries -------------------------------------------------------------------------------

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, Transient):
            return True
        if isinstance(exc, RateLimited):
            wait = exc.retry_after
            return wait is not None and wait <= self.settings.max_retry_after_seconds
        return False

    def _delay(self, exc: BaseException | None, attempts: int) -> float:
        """Seconds to wait after `attempts` failed attempts: Retry-After, else backoff."""
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return exc.retry_after
        base = self.settings.retry_backoff_seconds * 2 ** (attempts - 1)
        return base * (0.5 + random.random() / 2)

    def _give_up(self, attempts: int, sleep: float) -> bool:
        if attempts >= self.settings.max_attempts:
            return True
        left = deadline.remaining()
        # Another attempt only when it can still finish: its sleep plus a little time to answer.
        return left is not None and left < sleep + 0.2

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Runs `attempt` until it succeeds, fails for good, or the deadline forbids another."""
        # The first attempt runs bare: nearly every call succeeds at once, and a tenacity
        # retrier costs about 0.1 ms of CPU per call on the forwarding path.
        try:
            return await attempt()
        except ServiceError as exc:
            if not self._retryable(exc):
                raise
            first = exc
        sleep = self._delay(first, 1)
        if self._give_up(1, sleep):
            raise first
        log.warning("%s attempt 1 failed (%s); retrying in %.2f s", self.label, first, sleep)
        await asyncio.sleep(sleep)
        # tenacity numbers its attempts from 1; one has already been made.
        retrier = AsyncRetrying(
            retry=retry_if_exception(self._retryable),
            wait=lambda s: self._delay(
                s.outcome.exception() if s.outcome else None, s.attempt_number + 1
            ),
            stop=lambda s: self._give_up(s.attempt_number + 1, s.upcoming_sleep),
            reraise=True,
            before_sleep=lambda s: log.warning(
                "%s attempt %d failed (%s); retrying in %.2f s",
                self.label,
                s.attempt_number + 1,
                s.outcome.exception() if s.outcome else "?",
                s.upcoming_sleep,
            ),
        )
        return await retrier(attempt)

    # -- requests ------------------------------------------------------------------------------

    async def send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        try:
            response = await self.client.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise self.transport_error(exc) from exc
        if response.status_code >= 400:
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise self.transport_error(exc) from exc
            finally:
                await response.aclose()
            raise self.response_error(response)
        return response

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A complete (read) 2xx response, after retries; ServiceError otherwise."""

        async def attempt() -> httpx.Response:
            request = self.client.build_request(method, url, timeout=self.timeout(), **kwargs)
            return await self.send(request)

        return await self.retrying(attempt)

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object of a 2xx response."""
        if self._aiohttp is not None and kwargs.keys() <= {"json"}:
            body = kwargs.get("json")

            async def attempt() -> dict[str, Any]:  # a coroutine function, as tenacity needs
                return await self._json_direct(method, url, body)

            return await self.retrying(attempt)
        return self.parse_json(await self.request(method, url, **kwargs))

    async def _json_direct(self, method: str, url: str, body: Any) -> dict[str, Any]:
        """`json()` on aiohttp's pool without httpx's request and response objects around it:
        the chat path's commonest call, and httpx's part of it was about 0.3 ms of CPU, a fifth
        of what the providers service spends on a chat (bench/providers.py). Same pool, same
        timeouts and the same error mapping as a request through httpx."""
        transport = self._aiohttp
        assert transport is not None  # json() sends here only with the aiohttp transport
        if not isinstance(transport.client, aiohttp.ClientSession):
            transport.client = transport.get_client()
        timeout = self.timeout()
        data = None if body is None else _json_bytes(body)
        target = url if "://" in url else f"{self.base_url.rstrip('/')}/{url.lstrip('/')}"
        try:
            with map_aiohttp_exceptions():
                async with transport.client.request(
                    method,
                    target,
                    data=data,
                    headers=self._direct_headers,
                    allow_redirects=False,
                    # As httpx_aiohttp maps an httpx.Timeout.
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
                    ),
                ) as response:
                    content = await response.read()
        except httpx.TransportError as exc:
            raise self.transport_error(exc) from exc
        if response.status >= 400:
            raise self._answer_error(response.status, content, response.headers)
        return self._json_object(content)

    def parse_json(self, response: httpx.Response) -> dict[str, Any]:
        return self._json_object(response.content)

    def _json_object(self, content: bytes) -> dict[str, Any]:
        try:
            data = json.loads(content)
        except ValueError as exc:
            text = content.decode("utf-8", "replace")
            raise ProviderFailed(
                f"{self.label} answered something that is not JSON: {text[:200]!r}"
            ) from exc
        if not isinstance(data, dict):
            raise ProviderFailed(f"{self.label} answered unexpected JSON: {str(data)[:200]}")
        return data

    async def open_stream(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A 2xx response whose body is still to be read (retried until the first byte);
        the caller closes it. Each read waits at most the request timeout."""

        async def attempt() -> httpx.Response:
            request = self.client.build_request(method, url, timeout=self.timeout(), **kwargs)
            return await self.send(request, stream=True)

        return await self.retrying(attempt)


def _json_bytes(body: Any) -> bytes:
    """A JSON request body as httpx writes one."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class UpstreamPool:
    """The upstreams of one server, one per provider, shared by that provider's adapters."""

    def __init__(self, settings: ProvidersSettings) -> None:
        self.settings = settings
        self._by_name: dict[str, Upstream] = {}

    def get(self, name: str, factory: Callable[[], Upstream]) -> Upstream:
        if name not in self._by_name:
            self._by_name[name] = factory()
        return self._by_name[name]

    async def aclose(self) -> None:
        for upstream in self._by_name.values():
            await upstream.aclose()
        self._by_name.clear()
