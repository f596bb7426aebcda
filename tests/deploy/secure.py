"""What must hold before a build of deploy/ is applied to a cluster: no placeholder secret left,
and default-deny egress in place. `make deploy-check` runs this over the overlays (or the builds
named in DEPLOY_BUILDS) and fails listing what to fix; the tests check that it finds both.

    python -m tests.deploy.secure overlays/cpu overlays/gpu
"""

from __future__ import annotations

import base64
import sys

from tests.deploy.manifests import Obj, ident, of_kind, render

# A value shipped in deploy/base that an operator must replace.
PLACEHOLDER = "replace-me"


def secret_values(secret: Obj) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    return {**values, **secret.get("stringData", {})}


def placeholder_secrets(objs: list[Obj]) -> list[str]:
    """`Secret/name KEY` for each value still holding the shipped placeholder."""
    return [
        f"{ident(secret)} {key}"
        for secret in of_kind(objs, "Secret")
        for key, value in sorted(secret_values(secret).items())
        if PLACEHOLDER in value
    ]


def denies_egress_by_default(objs: list[Obj]) -> bool:
    """A NetworkPolicy over every pod with Egress in its types (what it allows is checked by
    the tests; here: that one exists)."""
    return any(
        policy["spec"].get("podSelector") == {}
        and "Egress" in policy["spec"].get("policyTypes", [])
        for policy in of_kind(objs, "NetworkPolicy")
    )


def problems(objs: list[Obj]) -> list[str]:
    found = [f"placeholder secret: {where}" for where in placeholder_secrets(objs)]
    if not denies_egress_by_default(objs):
        found.append("no default-deny egress NetworkPolicy (podSelector {}, policyTypes Egress)")
    return found


def main(builds: list[str]) -> int:
    failed = False
    for build in builds:
        for problem in problems(render(build)):
            print(f"deploy/{build}: {problem}", file=sys.stderr)
            failed = True
    if failed:
        print(
            "deploy-check: replace the placeholders (deploy/README.md, 'Put the keys in') in your "
            "overlay, and keep the egress policies, before applying",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["overlays/cpu", "overlays/gpu"]))
