"""The bounded download every service uses for a URL it was given.

`Downloader.download` follows redirects itself, one hop at a time, and every hop's host goes
through `UrlPolicy` (a redirect to an internal address is refused like a direct one); it connects
to the checked address, never to a second DNS answer; the whole download, hops included, stays
within the timeout; the body within the byte cap, counted while it streams (a Content-Length
over the cap is refused before reading); an answer whose Content-Type is not image/* is refused
unless the rules say otherwise; and the bytes must parse with Pillow as an accepted image type,
which is the content type returned. Every failure is a `FetchFailed` naming the caller's field.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from services.common.errors import InvalidArgument
from services.common.fetch.errors import FetchFailed
from services.common.fetch.policy import Target, UrlPolicy, shown
from services.common.fetch.rules import FetchRules
from services.common.fetch.sniff import sniff


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str  # what the bytes are (sniffed), not what the server said


class Downloader:
    def __init__(self, rules: FetchRules, client: httpx.AsyncClient | None = None) -> None:
        self.rules = rules
        self._policy = UrlPolicy(rules.allow_networks)
        self._client = client or httpx.AsyncClient(
            # Proxies from the environment would connect on our behalf, past the address check.
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(rules.timeout_seconds),
            # Connections go to checked addresses; reusing one for another host name is not
            # worth the doubt (a TLS session verified for a different name).
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def download(
        self,
        url: str,
        field: str = "url",
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Downloaded:
        """The image at `url`. `field` names it in messages ("url", "image[1]", "result
        image"); `timeout` (seconds) replaces the rules' own, e.g. with what a deadline leaves;
        `max_bytes`, when lower than the rules' cap, replaces it (what a request's budget for
        all its images leaves)."""
        if not url:
            raise FetchFailed(field, "required; give an http:// or https:// URL", "refused")
        limit = self.rules.timeout_seconds if timeout is None else timeout
        cap = self.rules.max_bytes if max_bytes is None else min(max_bytes, self.rules.max_bytes)
        try:
            async with asyncio.timeout(limit):
                data = await self._follow(url, field, cap)
        except TimeoutError as exc:
            raise FetchFailed(
                field, f"{shown(url)} took longer than {limit:g} s to download", "timeout"
            ) from exc
        try:
            content_type = await asyncio.to_thread(sniff, data)
        except InvalidArgument as exc:
            raise FetchFailed(field, exc.message, "not_image") from exc
        return Downloaded(data, content_type)

    async def _follow(self, url: str, field: str, cap: int) -> bytes:
        current: str | httpx.URL = url
        for _hop in range(self.rules.max_redirects + 1):
            target = await self._policy.resolve(current, field)
            try:
                response = await self._client.send(self._request(target), stream=True)
            except httpx.HTTPError as exc:
                raise FetchFailed(
                    field, f"could not download {shown(target.url)}: {_reason(exc)}", "unreachable"
                ) from exc
            try:
                if response.is_redirect:
                    current = target.url.join(response.headers["location"])
                    continue
                return await self._read(target, response, field, cap)
            finally:
                await response.aclose()
        raise FetchFailed(
            field,
            f"{shown(url)} redirected more than {self.rules.max_redirects} times",
            "redirects",
        )

    def _request(self, target: Target) -> httpx.Request:
        return httpx.Request(
            "GET",
            target.pinned_url,
            headers={
                "Host": target.host_header,
                "Accept": "image/*",
                # Counted bytes are the bytes returned: no decompression on the way.
                "Accept-Encoding": "identity",
                "User-Agent": self.rules.user_agent,
            },
            extensions={"sni_hostname": target.server_name} if target.secure else {},
        )

    async def _read(self, target: Target, response: httpx.Response, field: str, cap: int) -> bytes:
        where = shown(target.url)
        if not response.is_success:
            raise FetchFailed(
                field,
                f"{where} answered HTTP {response.status_code}",
                "status",
                response.status_code,
            )
        content_type = response.headers.get("content-type", "")
        if self.rules.image_content_type and not content_type.lower().startswith("image/"):
            raise FetchFailed(
                field,
                f"{where} is not an image (Content-Type: {content_type or 'none'})",
                "not_image",
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchFailed(field, self._too_large(where, cap), "too_large")
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > cap:
                    raise FetchFailed(field, self._too_large(where, cap), "too_large")
        except httpx.HTTPError as exc:
            raise FetchFailed(
                field, f"could not download {where}: {_reason(exc)}", "unreachable"
            ) from exc
        if not body:
            raise FetchFailed(field, f"{where} answered an empty body", "not_image")
        return bytes(body)

    def _too_large(self, where: str, cap: int) -> str:
        return f"{where} is larger than the {cap}-byte limit for fetched images"


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
