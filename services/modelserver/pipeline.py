"""The pipeline half both model servers share: load the diffusers pipeline the settings name,
seed one generator per image, run a call of one or more jobs with its step callback, hand each
job its PIL images.

A server's subclass names the diffusers classes it runs, what its `pipe(...)` call takes beyond
the sampling arguments (the edit server: the input images), and whether jobs can share a call
(`batch_key`; None runs every job alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import torch

from services.modelserver.acceleration import load_accelerated
from services.modelserver.batching import Batchable, BatchStepFn
from services.modelserver.controlnets import ControlEntry
from services.modelserver.limits import Sampling, guidance_arguments
from services.modelserver.loader import LoadedPipeline, load_pipeline
from services.modelserver.lora_adapters import LoraAdapters
from services.modelserver.loras import LoraLibrary, LoraSet
from services.modelserver.previews import batch_callback
from services.modelserver.settings import ModelServerSettings
from services.modelserver.tokens import InputTokens, TokenCounter


@dataclass(frozen=True)
class PipelineJob:
    """A checked request: its sampling parameters and output size."""

    sampling: Sampling
    width: int
    height: int


@dataclass(frozen=True)
class BatchKey:
    """What every job of one pipeline call must share. The scheduler's settings are the loaded
    pipeline's (no request changes them), so the class stands for them; `adapters` is the LoRA
    set with its scales (one `set_adapters` per call)."""

    pipeline_class: str
    width: int
    height: int
    steps: int
    guidance: tuple[tuple[str, float], ...]  # true_cfg_scale / guidance_scale as passed
    negative_prompt: bool  # true CFG runs only with one
    input_images: int = 0
    adapters: LoraSet = ()


J = TypeVar("J", bound=PipelineJob)


class ModelPipeline(Generic[J]):
    """One loaded diffusers pipeline and the way a server's jobs call it."""

    pipeline_classes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, loaded: LoadedPipeline, settings: ModelServerSettings) -> None:
        self.loaded = loaded
        self.lora_library = LoraLibrary(settings.lora_dir, settings.max_loras_per_request)
        self.adapters = LoraAdapters(loaded.pipe, self.lora_library, settings.max_loaded_loras)
        self.tokens = TokenCounter.of(loaded.pipe)

    @classmethod
    def load(cls, settings: ModelServerSettings) -> Self:
        """Loads `settings.location` (blocking; raises `PipelineLoadError` naming it)."""
        loaded = load_accelerated(  # CACHE / COMPILE / QUANTIZE switches, warmed up
            settings,
            lambda: load_pipeline(
                settings.location,
                pipeline_class=settings.pipeline_class or None,
                allowed_classes=cls.pipeline_classes,
                device=settings.device or None,
            ),
        )
        return cls(loaded, settings)

    def generators(self, sampling: Sampling) -> list[torch.Generator]:
        """Image i of a job gets its own generator seeded `seed + i`, so any image of a call
        can be made again alone, in any batch."""
        device = self.loaded.device
        return [
            torch.Generator(device).manual_seed(sampling.seed + i)
            for i in range(sampling.num_images)
        ]

    def sampling_arguments(self, job: J) -> dict[str, Any]:
        """The `pipe(...)` arguments every Qwen pipeline takes, for one job."""
        sampling = job.sampling
        return {
            "prompt": sampling.prompt,
            "negative_prompt": sampling.negative_prompt,
            "width": job.width,
            "height": job.height,
            "num_inference_steps": sampling.steps,
            "num_images_per_prompt": sampling.num_images,
            "generator": self.generators(sampling),
            **guidance_arguments(sampling),
        }

    def input_tokens(self, job: J) -> InputTokens:
        """The job's input in tokens (`tokens.py`): its text, and its input images."""
        sampling = job.sampling
        return InputTokens(
            text=self.tokens.text_tokens(sampling.prompt, sampling.negative_prompt),
            image=self.input_image_tokens(job),
        )

    def input_image_tokens(self, job: J) -> int:
        """Tokens the job's input images add to the transformer's sequence; none here (an
        img2img input starts the latents, it adds no tokens)."""
        return 0

    def batch_key(self, job: J) -> BatchKey | None:
        """The key of the calls `job` can share, or None when it runs alone."""
        return None

    def shared_key(self, job: J, input_images: int = 0) -> BatchKey:
        sampling = job.sampling
        return BatchKey(
            pipeline_class=self.loaded.class_name,
            width=job.width,
            height=job.height,
            steps=sampling.steps,
            guidance=tuple(sorted(guidance_arguments(sampling).items())),
            negative_prompt=sampling.negative_prompt is not None,
            input_images=input_images,
            adapters=sampling.loras,
        )

    def arguments(self, job: J) -> dict[str, Any]:
        """The `pipe(...)` keyword arguments for a job alone (the benchmarks call the pipeline
        with these too)."""
        return self.call_arguments([job])

    def call_arguments(self, jobs: list[J]) -> dict[str, Any]:
        """The `pipe(...)` keyword arguments for one call of `jobs` (one unless `batch_key`
        lets them share)."""
        (job,) = jobs
        return self.sampling_arguments(job)

    def batchable(self, job: J) -> Batchable[J]:
        """The job as the queue takes it."""
        n = job.sampling.num_images
        return Batchable(
            item=job,
            call=self.call,
            key=self.batch_key(job),
            images=n,
            describe=f"{job.width}x{job.height}, {job.sampling.steps} steps, {n} image(s)",
        )

    def controlnet_entries(self) -> list[ControlEntry]:
        """The ControlNets loaded beside the pipeline (`controlnets.py`); none unless a server
        loads them."""
        return []

    def pipe_for(self, job: J) -> Any:
        """The diffusers pipeline a call of `job` runs on (a server with inpaint / img2img
        variants picks one; they share the weights, and never a call: see `batch_key`)."""
        return self.loaded.pipe

    def call(self, jobs: list[J], step: BatchStepFn) -> list[list[Any]]:
        """Runs the pipeline once for `jobs` (blocking) and returns each job's PIL images;
        `step` after each step may raise to stop it, and gets each job's previews."""
        callback = batch_callback(step, jobs)
        self.adapters.activate(jobs[0].sampling.loras)  # the same for every job of a call
        pipe = self.pipe_for(jobs[0])
        result = pipe(**self.call_arguments(jobs), callback_on_step_end=callback)
        images = list(result.images)
        split, start = [], 0
        for job in jobs:
            split.append(images[start : start + job.sampling.num_images])
            start += job.sampling.num_images
        return split
