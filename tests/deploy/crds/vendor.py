"""Writes a CRD's published openAPIV3Schema as a strict JSON schema file next to this script.

    python -m tests.deploy.crds.vendor <crd.yaml> <source note>

Run by hand when a CRD version moves (nothing is fetched at test time). Strict like the
Kubernetes schemas the other objects meet: an object schema that lists its properties and says
nothing else refuses unknown fields (as the API server prunes and `kubectl --validate=strict`
reports them), `x-kubernetes-int-or-string` becomes integer-or-string, and
`x-kubernetes-preserve-unknown-fields` leaves an object open.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items() if key != "description"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in out if k.startswith("x-kubernetes-")]:
        out.pop(key)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def main(crd_path: str, source: str) -> None:
    crd = yaml.safe_load(Path(crd_path).read_text())
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["properties"]["metadata"] = {"type": "object"}
        schema["$comment"] = f"{group}/{version['name']} {kind} from {source}; strict (vendor.py)"
        out = HERE / f"{group}_{kind.lower()}_{version['name']}.json"
        out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
