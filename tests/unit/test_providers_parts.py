"""Small parts of the providers service: settings names, upstream error reading, Retry-After,
the LiblibAI signature, prompt language."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from services.providers.adapters.liblib import sign
from services.providers.rewrite import language_of
from services.providers.settings import ProvidersSettings
from services.providers.upstream import error_fields, retry_after_seconds


def test_settings_read_the_conventional_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-plain")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-plain-ds")
    monkeypatch.setenv("PROVIDERS_DASHSCOPE_API_KEY", "sk-prefixed-ds")
    monkeypatch.setenv("DASHSCOPE_BASE_URL", "https://dashscope-intl.aliyuncs.com/api/v1/")
    monkeypatch.setenv("LIBLIB_ACCESS_KEY", "ak")
    monkeypatch.setenv("PROVIDERS_LISTEN", "127.0.0.1:6000")
    settings = ProvidersSettings()
    assert settings.openai_api_key == "sk-plain"
    assert settings.dashscope_api_key == "sk-prefixed-ds"  # the prefixed name wins
    assert settings.dashscope_base_url == "https://dashscope-intl.aliyuncs.com"
    assert settings.liblib_access_key == "ak"
    assert settings.listen == "127.0.0.1:6000"


def test_settings_defaults() -> None:
    settings = ProvidersSettings(_env_file=None, openai_api_key="")
    assert (settings.listen, settings.metrics_listen) == ("127.0.0.1:50053", "127.0.0.1:9153")
    assert settings.rewrite_model == "qwen-plus"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error":{"message":"Bad key","type":"x","param":null,"code":"invalid_api_key"}}',
            ("Bad key", "invalid_api_key"),
        ),
        (
            b'{"request_id":"r","code":"InvalidApiKey","message":"Invalid API-key provided."}',
            ("Invalid API-key provided.", "InvalidApiKey"),
        ),
        ('{"code":401,"msg":"签名验证失败","data":null}'.encode(), ("签名验证失败", "401")),
        (b"<html>502 Bad Gateway</html>", ("<html>502 Bad Gateway</html>", "")),
    ],
)
def test_error_bodies_of_every_provider(body: bytes, expected: tuple[str, str]) -> None:
    assert error_fields(body) == expected


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert retry_after_seconds({}) is None


def test_retry_after_from_outside_is_bounded() -> None:
    for bad in ("nan", "-inf", "garbage", "Mon, 99 Foo 2015"):
        assert retry_after_seconds({"retry-after": bad}) is None, bad
    for huge in ("inf", "1e400", "Fri, 31 Dec 9999 23:59:59 GMT"):
        assert retry_after_seconds({"retry-after": huge}) == 86400, huge
    assert retry_after_seconds({"retry-after-ms": "inf"}) == 86400
    assert retry_after_seconds({"retry-after": "-5"}) == 0


def test_liblib_signature_matches_the_documented_recipe() -> None:
    path, secret, timestamp, nonce = "/api/generate/webui/status", "s3cr3t", "1725000000000", "ab"
    digest = hmac.new(secret.encode(), f"{path}&{timestamp}&{nonce}".encode(), hashlib.sha1)
    expected = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    assert sign(path, secret, timestamp, nonce) == expected
    assert "=" not in expected and "+" not in expected and "/" not in expected


@pytest.mark.parametrize(
    ("prompt", "language"),
    [("a fox", "en"), ("一只狐狸", "zh"), ("a 狐狸 in snow", "zh"), ("", "en")],
)
def test_prompt_language(prompt: str, language: str) -> None:
    assert language_of(prompt) == language
