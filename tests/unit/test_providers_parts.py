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
    assert settings.openai_api_key.get_secret_value() == "sk-plain"
    assert (
        settings.dashscope_api_key.get_secret_value() == "sk-prefixed-ds"
    )  # the prefixed name wins
    assert settings.dashscope_base_url == "https://dashscope-intl.aliyuncs.com"
    assert settings.liblib_access_key.get_secret_value() == "ak"
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


def test_keys_never_show_in_the_settings_repr() -> None:
    from services.storage.settings import StorageSettings

    providers = ProvidersSettings(
        _env_file=None,
        openai_api_key="sk-openai-1234",
        dashscope_api_key="sk-ds-5678",
        liblib_access_key="ak-9",
        liblib_secret_key="sk-lib-0",
    )
    storage = StorageSettings(access_key="minio-user", secret_key="minio-pass-1234")
    shown = f"{providers!r} {providers} {storage!r} {storage} {providers.model_dump()}"
    for secret in ("sk-openai-1234", "sk-ds-5678", "ak-9", "sk-lib-0", "minio-pass-1234"):
        assert secret not in shown
    assert storage.secret_key.get_secret_value() == "minio-pass-1234"


@pytest.mark.parametrize(
    ("body", "leak"),
    [
        (
            b'{"error":{"message":"Incorrect API key provided: sk-proj-abc*****wxyz. You can '
            b'find your API key at https://platform.openai.com/account/api-keys.",'
            b'"code":"invalid_api_key"}}',
            "sk-proj-abc",
        ),
        (b'{"code":"InvalidApiKey","message":"api_key=ds-1234abcd is invalid"}', "ds-1234abcd"),
        (b'{"code":401,"msg":"AccessKey=AK7788 signature mismatch"}', "AK7788"),
        (b"upstream said: Authorization: Bearer tok-99887766", "tok-99887766"),
    ],
)
def test_an_upstreams_error_text_never_carries_a_key(body: bytes, leak: str) -> None:
    message, _ = error_fields(body)
    assert leak not in message and "[redacted]" in message, message


def test_plain_error_text_is_left_as_it_is() -> None:
    body = b'{"error":{"message":"Rate limit reached for tokens per min","code":"rate_limit"}}'
    assert error_fields(body) == ("Rate limit reached for tokens per min", "rate_limit")
