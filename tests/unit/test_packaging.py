"""The project as installed: the generated stubs are the package `imagemesh` of the editable
install (gen/imagemesh), not a folder some .pth file puts on the path, so any process of the venv
imports them from anywhere; and every dependency sits in a pinned group that `dev` takes."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_stubs_import_from_any_folder_through_the_installed_package(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import imagemesh.v1.common_pb2 as m, services; print(m.__file__)"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == ROOT / "gen" / "imagemesh" / "v1" / "common_pb2.py"


def test_no_pth_file_puts_gen_on_the_path() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    for pth in site.glob("*.pth"):
        lines = pth.read_text().splitlines()
        assert not any(line.strip().rstrip("/").endswith("/gen") for line in lines), pth


def test_dev_takes_every_group() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        groups = tomllib.load(handle)["dependency-groups"]

    def included(name: str) -> set[str]:
        found = {name}
        for entry in groups[name]:
            if isinstance(entry, dict):
                found |= included(entry["include-group"])
        return found

    assert included("dev") == set(groups)
