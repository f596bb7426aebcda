"""Partial images: previews decoded from a streamed job's intermediate latents.

A client that asks for `partial_images` (0..3) gets that many previews at evenly spaced steps
before the last one (the last step's picture is the result itself), so a job of N steps has at
most N - 1 of them. A preview is the job's first image (in a batch: its own first image),
decoded the way the Qwen pipelines decode their final latents: unpack the 2x2-packed sequence,
undo the VAE's latent normalisation, decode, post-process to PIL. It runs in the pipeline thread
between two steps and costs one VAE decode of one image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from services.modelserver.batching import BatchStepFn, PreviewFn
from services.modelserver.jobs import Preview
from services.modelserver.limits import Sampling


class PreviewSource(Protocol):
    """What a preview needs of a job: how many previews, of which size, among how many images."""

    @property
    def sampling(self) -> Sampling: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


def preview_steps(total_steps: int, count: int) -> tuple[int, ...]:
    """The steps (1-based) after which a preview is made: `count` of them evenly spaced in
    1..total_steps - 1, or all of those when there are not more."""
    if count >= total_steps - 1:
        return tuple(range(1, total_steps))
    # Spacing total / (count + 1) > 1 here, so the rounded steps are distinct and in range.
    return tuple(int(total_steps * (i + 1) / (count + 1) + 0.5) for i in range(count))


class PreviewPlan:
    """Which steps of one job get a preview, and how to make one."""

    def __init__(self, total_steps: int, count: int, width: int, height: int) -> None:
        self.steps = preview_steps(total_steps, count)
        self.width = width
        self.height = height

    def preview(self, pipe: Any, latents: torch.Tensor, step: int) -> Preview:
        return Preview(step, self.steps.index(step), decode_latents(pipe, latents[:1], self))

    @classmethod
    def for_job(cls, total_steps: int, count: int, width: int, height: int) -> PreviewPlan | None:
        """A plan, or None when no previews were asked for."""
        return cls(total_steps, count, width, height) if count > 0 else None


def decode_latents(pipe: Any, packed: torch.Tensor, size: PreviewPlan) -> list[Any]:
    """Packed latents (batch, patches, channels x 4) -> PIL images, as the pipeline's own last
    lines do (`QwenImagePipeline.__call__` after the denoising loop)."""
    vae = pipe.vae
    latents = pipe._unpack_latents(packed, size.height, size.width, pipe.vae_scale_factor)
    latents = latents.to(vae.dtype)
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents.device, latents.dtype)
    std = torch.tensor(vae.config.latents_std).view(shape).to(latents.device, latents.dtype)
    with torch.no_grad():
        image = vae.decode(latents * std + mean, return_dict=False)[0][:, :, 0]
    return list(pipe.image_processor.postprocess(image, output_type="pil"))


def batch_callback(
    step: BatchStepFn, jobs: Sequence[PreviewSource]
) -> Callable[..., dict[str, Any]]:
    """A diffusers `callback_on_step_end` for one call of `jobs` (their images in that order)
    that reports step i + 1 to `step`, with each job's preview (of its first image) at the steps
    its `partial_images` asks for.

    An exception raised by `step` (`JobCancelled`, once every job is gone) propagates out of the
    pipeline call: the run stops before the next step, nothing more is decoded.
    """
    plans, offsets, offset = [], [], 0
    for job in jobs:
        plans.append(
            PreviewPlan.for_job(
                job.sampling.steps, job.sampling.partial_images, job.width, job.height
            )
        )
        offsets.append(offset)
        offset += job.sampling.num_images

    def on_step_end(
        pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        done = index + 1
        latents = tensors["latents"]
        previews: list[PreviewFn | None] = [
            _preview(plan, pipe, latents[at : at + 1], done)
            if plan is not None and done in plan.steps
            else None
            for plan, at in zip(plans, offsets, strict=True)
        ]
        step(done, previews)
        return {}

    return on_step_end


def _preview(plan: PreviewPlan, pipe: Any, latents: torch.Tensor, step: int) -> PreviewFn:
    return lambda: plan.preview(pipe, latents, step)
