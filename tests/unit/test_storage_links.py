"""LinkChecker on its own: which links may read a key, signed locally with the service's settings
(no S3 is contacted; the integration tests read real objects through it)."""

from __future__ import annotations

import time
import urllib.parse

import pytest

from services.storage.links import LinkChecker, LinkRefused
from services.storage.object_store import ObjectStore
from services.storage.settings import StorageSettings

KEY = "imagemesh/2026-12-03/1764770000000/a b.png"


@pytest.fixture
def store() -> ObjectStore:
    return ObjectStore(StorageSettings())


def _with(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def test_an_issued_link_passes_until_its_expiry(store: ObjectStore) -> None:
    checker = LinkChecker("", store.presign_get)
    link = store.presign_get(KEY, 60)
    checker.check(KEY, link)
    checker.check(KEY, "")  # a mesh service reading its own object
    with pytest.raises(LinkRefused, match="expired at"):
        checker.check(KEY, link, now=time.time() + 120)


@pytest.mark.parametrize(
    "changes",
    [
        {"X-Amz-Expires": "0"},
        {"X-Amz-Expires": "-5"},
        {"X-Amz-Expires": "soon"},
        {"X-Amz-Expires": str(10**30)},
        {"X-Amz-Expires": str(8 * 24 * 3600)},
        {"X-Amz-Date": "yesterday"},
        {"X-Amz-Date": "99991231T235959Z"},
    ],
)
def test_signature_fields_that_are_not_ours_are_refused(store: ObjectStore, changes) -> None:
    checker = LinkChecker("", store.presign_get)
    with pytest.raises(LinkRefused, match="is not one we issued"):
        checker.check(KEY, _with(store.presign_get(KEY, 60), **changes))


def test_another_services_credentials_do_not_sign_for_ours(store: ObjectStore) -> None:
    theirs = ObjectStore(StorageSettings(secret_key="someone-elses-secret"))
    with pytest.raises(LinkRefused, match="is not one we issued"):
        LinkChecker("", store.presign_get).check(KEY, theirs.presign_get(KEY, 60))


def test_unsigned_links_pass_only_under_the_public_base_url(store: ObjectStore) -> None:
    public = LinkChecker("https://cdn.example.test/images/", store.presign_get)
    public.check(KEY, f"https://cdn.example.test/images/{urllib.parse.quote(KEY)}")
    with pytest.raises(LinkRefused, match="not signed"):
        public.check(KEY, f"https://cdn.example.test/imagesX/{KEY}")
    with pytest.raises(LinkRefused, match="not signed"):
        LinkChecker("", store.presign_get).check(KEY, f"http://127.0.0.1:9000/imagemesh/{KEY}")
