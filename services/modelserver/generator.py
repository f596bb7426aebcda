"""A request's way through a model server, without gRPC: check it, queue it, run it, encode.

`ModelGenerator` is what a server's servicer calls and what tests drive directly. A server's
subclass turns its request spec into a pipeline job (`prepare`, raising `InvalidArgument` naming
what to fix, before the request takes a queue slot); the rest is the same for every server:
`Unavailable` until the pipeline is loaded, the job through the server's queue, the images encoded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import ClassVar, Generic, TypeVar

from services.modelserver.controlnets import ControlEntry
from services.modelserver.jobs import Progress, StepHook
from services.modelserver.limits import Sampling, check_sampling
from services.modelserver.loras import LoraEntry, LoraLibrary, LoraRef, LoraSet
from services.modelserver.pipeline import ModelPipeline, PipelineJob
from services.modelserver.refusals import StillLoading
from services.modelserver.runner import GenerationOutput, PartialOutput, Runner
from services.modelserver.settings import ModelServerSettings


@dataclass(frozen=True)
class SamplingSpec:
    """The fields every request has, as the caller sent them: 0 and None mean "server default"."""

    prompt: str
    negative_prompt: str | None = None  # None: no true CFG; "" runs it with an empty one
    width: int = 0
    height: int = 0
    num_inference_steps: int = 0
    true_cfg_scale: float | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    num_images: int = 0
    output_format: str = "png"
    partial_images: int = 0  # 0..3 previews in a stream (`generate_stream`)
    loras: tuple[LoraRef, ...] = ()  # up to MAX_LORAS_PER_REQUEST adapters from LORA_DIR
    output_compression: int | None = None  # 0..100, JPEG/WebP quality; None: 95


S = TypeVar("S", bound=SamplingSpec)
J = TypeVar("J", bound=PipelineJob)
Settings = TypeVar("Settings", bound=ModelServerSettings)


class ModelGenerator(Generic[Settings, S, J]):
    """Checks, queues and runs one server's requests on its pipeline."""

    name: ClassVar[str]  # the queue's name in logs and metrics
    pipeline_type: ClassVar[type[ModelPipeline]]  # type: ignore[type-arg]

    def __init__(
        self,
        settings: Settings,
        pipeline: ModelPipeline[J] | None = None,
        step_hook: StepHook | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.runner = Runner(self.name, settings, step_hook)

    async def load(self) -> None:
        """Loads the pipeline off the event loop (raises `PipelineLoadError` naming the path)."""
        self.pipeline = await asyncio.to_thread(self.pipeline_type.load, self.settings)

    def ready(self) -> ModelPipeline[J]:
        if self.pipeline is None:
            raise StillLoading(
                f"the pipeline from {self.settings.location} is still loading; "
                "retry when the health service says SERVING"
            )
        return self.pipeline

    def sampling(self, spec: SamplingSpec) -> Sampling:
        """The shared fields checked, server defaults filled in."""
        sampling = check_sampling(
            self.settings,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            num_inference_steps=spec.num_inference_steps,
            true_cfg_scale=spec.true_cfg_scale,
            guidance_scale=spec.guidance_scale,
            seed=spec.seed,
            num_images=spec.num_images,
            output_format=spec.output_format,
            partial_images=spec.partial_images,
            output_compression=spec.output_compression,
        )
        return replace(sampling, loras=self.check_loras(spec.loras))

    def check_loras(self, refs: tuple[LoraRef, ...]) -> LoraSet:
        """The request's adapters, checked against the loaded pipeline's library."""
        return self.ready().lora_library.check(refs) if refs else ()

    def lora_entries(self) -> list[LoraEntry]:
        """The adapters of LORA_DIR as Describe lists them (before the load: none loaded)."""
        if self.pipeline is not None:
            return self.pipeline.lora_library.entries()
        settings = self.settings
        return LoraLibrary(settings.lora_dir, settings.max_loras_per_request).entries()

    def controlnet_entries(self) -> list[ControlEntry]:
        """The ControlNets loaded beside the pipeline, as Describe lists them (before the load:
        none)."""
        return [] if self.pipeline is None else self.pipeline.controlnet_entries()

    async def prepare(self, spec: S) -> J:
        """The job for a request, or `InvalidArgument` naming what to fix."""
        raise NotImplementedError

    async def generate(self, spec: S) -> GenerationOutput:
        pipeline = self.ready()
        job = await self.prepare(spec)
        tokens = pipeline.input_tokens(job)
        output = await self.runner.run(pipeline.batchable(job), job.sampling)
        return dataclasses.replace(output, input_tokens=tokens)

    async def generate_stream(
        self, spec: S
    ) -> AsyncIterator[Progress | PartialOutput | GenerationOutput]:
        """Queue position, each step, the previews asked for, then the output."""
        pipeline = self.ready()
        job = await self.prepare(spec)
        tokens = pipeline.input_tokens(job)
        async for event in self.runner.stream(pipeline.batchable(job), job.sampling):
            if isinstance(event, GenerationOutput):
                event = dataclasses.replace(event, input_tokens=tokens)
            yield event

    async def close(self) -> None:
        await self.runner.close()
