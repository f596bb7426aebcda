"""Key layout, name and prefix checks, content types, links: the storage rules without S3."""

from __future__ import annotations

import re

import pytest

from services.common.errors import InvalidArgument
from services.storage.keys import check_key, check_name, check_prefix, file_name, make_key
from services.storage.media_types import check_content_type
from services.storage.object_store import ObjectStore
from services.storage.settings import StorageSettings
from services.storage.uploader import Uploader

# 2026-11-22T10:00:00.123Z
NOW_MS = 1795356000123


def test_key_layout_is_folder_date_millis_name() -> None:
    assert make_key("imagemesh", "a.png", NOW_MS) == "imagemesh/2026-11-22/1795356000123/a.png"


def test_key_uses_the_current_time_by_default() -> None:
    key = make_key("up", "a.png")
    assert re.fullmatch(r"up/\d{4}-\d{2}-\d{2}/\d{13}/a\.png", key)


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("cat.png", "image/png", "cat.png"),
        ("cat", "image/jpeg", "cat.jpg"),
        ("a.b", "image/png", "a.b"),
    ],
)
def test_file_name_keeps_the_callers_name(name: str, content_type: str, expected: str) -> None:
    assert file_name(name, content_type) == expected


def test_file_name_is_random_with_the_types_extension_when_missing() -> None:
    first, second = file_name("", "image/webp"), file_name("", "image/webp")
    assert first.endswith(".webp") and first != second


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../etc/passwd", "'..'"),
        ("..", "'..'"),
        ("/abs.png", "starts with '/'"),
        ("a/b.png", "holds '/'"),
        ("a\\b.png", "backslash"),
        ("a\nb.png", "control characters"),
        ("x" * 300, "longer than"),
    ],
)
def test_bad_names_are_refused_with_the_reason(name: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(says)):
        check_name(name)


def test_prefixes_may_hold_folders() -> None:
    assert check_prefix("users/42/edits/") == "users/42/edits"


@pytest.mark.parametrize("prefix", ["/abs", "a/../b", "..", "a//b", "./a"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidArgument, match="prefix"):
        check_prefix(prefix)


@pytest.mark.parametrize("key", ["", "/a.png", "a/../b.png"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidArgument, match="key"):
        check_key(key)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("image/png", "image/png"), ("IMAGE/JPG", "image/jpeg"), ("image/webp; q=1", "image/webp")],
)
def test_content_types_are_normalised(given: str, expected: str) -> None:
    assert check_content_type(given) == expected


@pytest.mark.parametrize("given", ["", "text/html", "application/octet-stream", "image/svg+xml"])
def test_other_content_types_are_refused_with_the_accepted_list(given: str) -> None:
    with pytest.raises(InvalidArgument, match="use one of image/png, image/jpeg"):
        check_content_type(given)


def test_settings_read_allowed_networks_as_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_FETCH_ALLOW_NETWORKS", "127.0.0.0/8, 10.1.0.0/16")
    settings = StorageSettings()
    assert [str(n) for n in settings.fetch_allow_networks] == ["127.0.0.0/8", "10.1.0.0/16"]


def test_settings_refuse_an_unsafe_upload_dir() -> None:
    with pytest.raises(ValueError, match="upload_dir"):
        StorageSettings(upload_dir="../up")


def test_public_base_url_links_are_the_base_and_key() -> None:
    settings = StorageSettings(public_base_url="https://cdn.example.com/images/")
    uploader = Uploader(settings, ObjectStore(settings))
    link = uploader.link("imagemesh/2026-11-22/1795356000123/a b.png")
    assert link.url == "https://cdn.example.com/images/imagemesh/2026-11-22/1795356000123/a%20b.png"
    assert link.expires_at == 0


def test_presigned_links_expire_as_configured() -> None:
    settings = StorageSettings(presign_expiry_seconds=600)
    uploader = Uploader(settings, ObjectStore(settings))
    link = uploader.link("imagemesh/2026-11-22/1/a.png")
    assert "X-Amz-Expires=600" in link.url
    assert link.url.startswith("http://127.0.0.1:9000/imagemesh/imagemesh/2026-11-22/1/a.png?")


def test_presigned_links_can_name_a_public_host() -> None:
    settings = StorageSettings(s3_endpoint="minio:9000", presign_endpoint="images.example.com")
    link = Uploader(settings, ObjectStore(settings)).link("imagemesh/2026-11-22/1/a.png")
    assert link.url.startswith("https://images.example.com/imagemesh/imagemesh/2026-11-22/1/a.png?")
