"""The storage service's MinIO login (issue 19 section 3): its own user, limited to its bucket and
created by the minio-setup Job, never MinIO's root credentials; both secrets ship as placeholders
that `make deploy-check` refuses."""

from __future__ import annotations

import json
import re

from tests.deploy.manifests import Obj, env_value, named, of_kind, pod_spec
from tests.deploy.secure import placeholder_secrets

ROOT_SECRET = "minio-credentials"
USER_SECRET = "storage-s3-credentials"


def _secret_ref(container: Obj, name: str) -> tuple[str, str]:
    entry = next(e for e in container["env"] if e["name"] == name)
    ref = entry["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional", False)
    return ref["name"].rsplit("-", 1)[0], ref["key"]


def _setup(objs: list[Obj]) -> tuple[Obj, str]:
    job = named(objs, "Job", "minio-setup")
    container = pod_spec(job)["containers"][0]
    return container, container["command"][-1]


def test_the_storage_service_logs_in_as_its_own_user_not_root(rendered):
    for build, objs in rendered.items():
        storage = pod_spec(named(objs, "Deployment", "storage"))["containers"][0]
        assert _secret_ref(storage, "STORAGE_ACCESS_KEY") == (USER_SECRET, "STORAGE_ACCESS_KEY")
        assert _secret_ref(storage, "STORAGE_SECRET_KEY") == (USER_SECRET, "STORAGE_SECRET_KEY")
        # Only MinIO and the Job read the root login.
        readers = {
            workload["metadata"]["name"]
            for workload in of_kind(objs, "Deployment", "StatefulSet", "Job")
            for container in pod_spec(workload)["containers"]
            for entry in container.get("env", [])
            if entry.get("valueFrom", {})
            .get("secretKeyRef", {})
            .get("name", "")
            .startswith(ROOT_SECRET + "-")
        }
        assert readers == {"minio", "minio-setup"}, build


def test_the_job_creates_that_user_with_a_policy_on_the_bucket_alone(rendered):
    for build, objs in rendered.items():
        container, script = _setup(objs)
        assert _secret_ref(container, "MINIO_ROOT_PASSWORD") == (ROOT_SECRET, "MINIO_ROOT_PASSWORD")
        assert _secret_ref(container, "STORAGE_ACCESS_KEY") == (USER_SECRET, "STORAGE_ACCESS_KEY")
        assert _secret_ref(container, "STORAGE_SECRET_KEY") == (USER_SECRET, "STORAGE_SECRET_KEY")
        storage = pod_spec(named(objs, "Deployment", "storage"))["containers"][0]
        bucket = env_value(storage, "STORAGE_BUCKET")
        assert env_value(container, "BUCKET") == bucket, build
        policy_text = re.search(r"<<POLICY\n(.*?)\nPOLICY\n", script, re.S)
        assert policy_text, "the policy JSON is a heredoc in the Job's script"
        policy = json.loads(policy_text.group(1).replace("$BUCKET", bucket))
        resources = {r for s in policy["Statement"] for r in s["Resource"]}
        assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}, build
        actions = {a for s in policy["Statement"] for a in s["Action"]}
        assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
        assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
        for step in (
            "mc admin policy create root imagemesh-storage /tmp/policy.json",
            'mc admin user add root "$STORAGE_ACCESS_KEY" "$STORAGE_SECRET_KEY"',
            'mc admin policy attach root imagemesh-storage --user "$STORAGE_ACCESS_KEY"',
        ):
            assert step in script, step


def test_deploy_check_refuses_both_shipped_passwords(overlays):
    for build, objs in overlays.items():
        found = placeholder_secrets(objs)
        assert any(ROOT_SECRET in f and "MINIO_ROOT_PASSWORD" in f for f in found), build
        assert any(USER_SECRET in f and "STORAGE_SECRET_KEY" in f for f in found), build
