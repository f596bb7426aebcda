"""The tiny, randomly initialised components of the real Qwen-Image architecture.

Each function seeds torch before it builds, so the same versions of torch, transformers and
diffusers give the same weights on every machine. Sizes are the smallest that keep every shape
constraint of the real model (see `shared/notes/models.md`):

- text encoder: Qwen2.5-VL with the text sizes inside `text_config` (transformers 5 ignores
  top-level `vocab_size`/`hidden_size` when `text_config` is a dict), mrope sections summing to
  half the head dim, and a small vision tower whose output size is the text hidden size;
- transformer: in_channels = 4 x the VAE's z_dim (2x2 latent packing), rope axes summing to the
  head dim, joint attention dim = the text hidden size;
- VAE: z_dim 16 keeps the default 16-entry latents mean/std, three downsamples keep the scale
  factor 8, so sizes must be multiples of 16 exactly as with the real model; its posterior is
  made nearly a point and its attention blocks the identity, so that, as with a trained VAE, an
  encode-decode round trip is the same every time and local (inpainting keeps what it keeps);
- scheduler: Qwen-Image's published FlowMatch settings (dynamic, exponential time shift).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageTransformer2DModel,
)
from diffusers.models.autoencoders.autoencoder_kl_qwenimage import QwenImageAttentionBlock
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from services.tinymodels.tokenizer import ENDOFTEXT, special_token_ids

SEED = 20251122
TEXT_HIDDEN = 32
HEAD_DIM = 32


def text_encoder(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    ids = special_token_ids(tokenizer)
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            # head_dim 16: the three mrope sections (time, height, width) sum to head_dim / 2.
            "rope_scaling": {"mrope_section": [2, 3, 3], "rope_type": "default"},
            "rope_theta": 1000000.0,
            "max_position_embeddings": 32768,
            "bos_token_id": ids[ENDOFTEXT],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids[ENDOFTEXT],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": TEXT_HIDDEN,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(SEED)
    return Qwen2_5_VLForConditionalGeneration(config)


def transformer() -> QwenImageTransformer2DModel:
    torch.manual_seed(SEED + 1)
    return QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=2,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=2,
        joint_attention_dim=TEXT_HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(8, 12, 12),
    )


def vae() -> AutoencoderKLQwenImage:
    torch.manual_seed(SEED + 2)
    # base_dim 8 (the real model has 96): the full-resolution convolutions dominate CPU time,
    # and the edit pipelines encode every input image at about 1 megapixel.
    model: Any = AutoencoderKLQwenImage(  # Any: diffusers' typing hides the nn.Module side
        base_dim=8,
        z_dim=16,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    # A trained VAE's posterior is nearly a point (tiny variance); a random one's is not, and the
    # pipelines sample it, so an inpaint's kept area would change with every seed. The log-variance
    # half of quant_conv's output pinned at the clamp floor (-30) makes the sample the mean.
    # Its attention blocks (one mid-block each side) mix every position with every other, so a
    # change anywhere moved the whole decoded picture; a zero output projection leaves them the
    # identity, and the round trip local, as a trained VAE's is.
    with torch.no_grad():
        model.quant_conv.weight[16:].zero_()
        model.quant_conv.bias[16:].fill_(-30.0)
        for block in model.modules():
            if isinstance(block, QwenImageAttentionBlock):
                block.proj.weight.zero_()
                block.proj.bias.zero_()
    return model


def scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=0.9,
        base_image_seq_len=256,
        max_image_seq_len=8192,
        shift_terminal=0.02,
        time_shift_type="exponential",
        invert_sigmas=False,
        stochastic_sampling=False,
        use_karras_sigmas=False,
        use_exponential_sigmas=False,
        use_beta_sigmas=False,
    )


def image_processor() -> Qwen2VLImageProcessorPil:
    """Qwen2-VL's image processor with its defaults (patch 14, merge 2, temporal patch 2).

    The PIL backend needs no torchvision; it saves as `Qwen2VLImageProcessor`, as the real
    checkpoints name it, and `AutoImageProcessor` picks the PIL backend back when torchvision is
    absent.
    """
    return Qwen2VLImageProcessorPil()
