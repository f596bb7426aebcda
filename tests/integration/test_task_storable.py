"""What no task database keeps never reaches one as an error: U+0000 in any stored string (the
request, the result, the failure message) is dropped on SQLite and on a real PostgreSQL, an
over-long provider is refused before the insert, and a NaN stored before it was refused is shown
back as null instead of failing every answer about its task."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import pytest
from imagemesh.v1 import tasks_pb2
from sqlalchemy import update

from services.common.errors import InvalidArgument
from services.tasks.convert import new_task as checked_task
from services.tasks.convert import task_message
from services.tasks.database import TaskRow
from services.tasks.records import NewTask
from services.tasks.store import TaskStore
from tests.support.tasks import Clock, database_url, output_for

__all__ = ["database_url"]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TaskStore]:
    store = await TaskStore.open(database_url, Clock())
    yield store
    await store.close()


def _request(prompt: str, provider: str = "") -> tasks_pb2.CreateTaskRequest:
    request = tasks_pb2.CreateTaskRequest(
        spec=tasks_pb2.TaskSpec(
            model="qwen-image", prompt=prompt, n=1, backend=tasks_pb2.TASK_BACKEND_QWEN_IMAGE
        ),
        provider=provider,
    )
    request.parameters.update({"prompt": prompt, "tags": ["x\x00y"], "k\x00": 1})
    return request


async def test_nul_characters_are_stored_without_them(store: TaskStore) -> None:
    created = await store.create(checked_task(_request("a\x00 cat"), "rid\x00"))
    read = await store.get(created.id)
    assert read is not None
    assert read.parameters == {"prompt": "a cat", "tags": ["xy"], "k": 1}
    assert read.spec["prompt"] == "a cat" and read.request_id == "rid"

    claimed = await store.claim("w1", 30)
    assert claimed is not None
    output = output_for(claimed)
    output.extra["warnings"] = ["bad\x00 warning"]
    assert await store.complete(created.id, "w1", output, 60)
    done = await store.get(created.id)
    assert done is not None and done.output is not None
    assert done.output.extra["warnings"] == ["bad warning"]


async def test_a_failure_message_with_nul_is_stored_without_it(store: TaskStore) -> None:
    created = await store.create(NewTask(model="qwen-image", parameters={"prompt": "a cat"}))
    assert await store.claim("w1", 30) is not None
    assert await store.fail(created.id, "w1", "Upstream\x00", "said \x00 no", 60)
    done = await store.get(created.id)
    assert done is not None and (done.error_code, done.error_message) == ("Upstream", "said  no")


def test_an_over_long_provider_is_refused_before_the_database() -> None:
    with pytest.raises(InvalidArgument, match="provider must be at most 64 characters"):
        checked_task(_request("a cat", provider="p" * 300), "rid")


async def test_a_stored_nan_is_shown_as_null(store: TaskStore) -> None:
    created = await store.create(NewTask(model="qwen-image", parameters={"prompt": "a cat"}))
    if store.is_postgres:
        pytest.skip("PostgreSQL's JSONB never held a NaN")
    # A row as an earlier version stored it (SQLite's JSON kept NaN).
    async with store.engine.begin() as conn:
        await conn.execute(
            update(TaskRow)
            .where(TaskRow.id == created.id)
            .values(parameters={"prompt": "a cat", "cfg": math.nan, "r": [math.inf]})
        )
    read = await store.get(created.id)
    assert read is not None and math.isnan(read.parameters["cfg"])
    shown = task_message(read)
    parameters = json.loads(json.dumps(dict(shown.parameters), default=list, allow_nan=False))
    assert parameters["cfg"] is None and parameters["r"] == [None]
