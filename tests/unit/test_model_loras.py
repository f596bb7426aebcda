"""The LoRA library of a model server (`services/modelserver/loras.py`): which adapters a folder
holds, how a request's adapters are checked, and how a broken adapter is marked and forgiven."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from services.modelserver.loras import LoraLibrary, LoraRef


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("style-b", "style-a"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an adapter")
    (tmp_path / "dir.safetensors").mkdir()
    return tmp_path


def test_one_adapter_per_safetensors_file_named_by_its_stem(folder: Path) -> None:
    library = LoraLibrary(str(folder), max_per_request=2)
    assert list(library.files()) == ["style-a", "style-b"]
    (folder / "style-c.safetensors").write_bytes(b"x")  # added while serving: seen at once
    assert [entry.name for entry in library.entries()] == ["style-a", "style-b", "style-c"]
    assert all(entry.available and not entry.loaded for entry in library.entries())


def test_a_checked_set_is_sorted_with_default_scales(folder: Path) -> None:
    library = LoraLibrary(str(folder), max_per_request=2)
    assert library.check(()) == ()
    assert library.check((LoraRef("style-b", 0.5), LoraRef("style-a"))) == (
        ("style-a", 1.0),
        ("style-b", 0.5),
    )


@pytest.mark.parametrize(
    ("refs", "error", "message"),
    [
        ((LoraRef("nope"),), NotFound, "lora.name: no adapter 'nope'; available: style-a, style-b"),
        ((LoraRef("style-a", 2.01),), InvalidArgument, "lora.scale: 2.01 is outside 0..2"),
        ((LoraRef("style-a", float("nan")),), InvalidArgument, "lora.scale: nan is outside"),
        (
            (LoraRef("style-a"), LoraRef("style-b", -0.5)),
            InvalidArgument,
            "lora[1].scale: -0.5 is outside 0..2",
        ),
        (
            (LoraRef("style-a"), LoraRef("style-b"), LoraRef("style-a")),
            InvalidArgument,
            "lora: 3 adapters given; at most 2 per request",
        ),
        ((LoraRef("style-a"), LoraRef("style-a")), InvalidArgument, "style-a is given twice"),
        ((LoraRef(""),), InvalidArgument, "lora.name: must not be empty"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    folder: Path, refs: tuple[LoraRef, ...], error: type[ServiceError], message: str
) -> None:
    with pytest.raises(error) as caught:
        LoraLibrary(str(folder), max_per_request=2).check(refs)
    assert message in caught.value.message


def test_no_folder_says_there_are_no_adapters() -> None:
    with pytest.raises(NotFound) as caught:
        LoraLibrary("", max_per_request=2).check((LoraRef("style-a"),))
    assert "this server has no adapters (its LORA_DIR setting is empty)" in caught.value.message
    assert LoraLibrary("", max_per_request=2).entries() == []


def test_a_broken_adapter_is_refused_until_its_file_changes(folder: Path) -> None:
    library = LoraLibrary(str(folder), max_per_request=2)
    path = folder / "style-a.safetensors"
    library.mark_broken("style-a", path, "its file style-a.safetensors does not load (bad)")
    [broken] = [entry for entry in library.entries() if entry.name == "style-a"]
    assert not broken.available and "does not load (bad)" in broken.reason
    with pytest.raises(FailedPrecondition) as caught:
        library.check((LoraRef("style-a"),))
    assert "lora 'style-a' is unavailable on this server" in caught.value.message
    with pytest.raises(NotFound) as unknown:
        library.check((LoraRef("nope"),))
    assert unknown.value.message.endswith("available: style-b")  # the broken one is not offered
    assert library.check((LoraRef("style-b"),)) == (("style-b", 1.0),)  # the rest still work
    path.write_bytes(b"a new file")  # the operator replaced it: tried again
    os.utime(path, (1, 1))
    assert library.check((LoraRef("style-a"),)) == (("style-a", 1.0),)
