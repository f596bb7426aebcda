"""The tiny pipelines' tokenizer: a small byte-level BPE trained at build time.

It mirrors Qwen2's tokenizer: the same pre-tokenizer regex, byte-level alphabet, NFC normaliser
and special tokens, wrapped as `transformers.Qwen2Tokenizer`. Byte-level means any prompt, Chinese
included, tokenizes; the vocabulary is just small.

Why the training text includes the pipelines' own prompt templates: each Qwen pipeline drops a
fixed number of leading tokens from the encoded prompt (`prompt_template_encode_start_idx`: 34 for
text to image, 64 for the edit pipelines), which are the template's system message up to and
including `<|im_start|>user\\n`. The real Qwen tokenizer encodes every pre-token of that prefix as
one token. Training on the templates (weighted so their words merge first) gives this tokenizer
the same property, so the drop removes exactly the template, no prompt token and no template
token more; `template_prefix_length` lets a test prove it.
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import Qwen2Tokenizer

# Qwen2's pre-tokenizer regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS = (
    ENDOFTEXT,
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
USER_TURN = "<|im_start|>user\n"
VOCAB_SIZE = 1024
TEMPLATE_WEIGHT = 64  # repetitions of each template in the training text

# A little ordinary text so common prompt words get their own tokens too.
GENERAL_TEXT = (
    "A photo of a cat sleeping on a sofa. A red apple on a wooden table, soft light.",
    "The quick brown fox jumps over the lazy dog; a city street at night, rain, neon signs.",
    "Make the sky blue, add a hat to the dog, replace the text with 'hello', remove the car.",
    "Picture 1 and Picture 2: the person from the first image stands in the second scene.",
    "一只可爱的猫在沙发上睡觉。一副典雅庄重的对联悬挂于厅堂之中，桌子上放着一些青花瓷。",
    "把天空变成蓝色，给狗戴上帽子，替换文字，删除汽车。高清，细节丰富，4K, 1024x1024, 1328*1328.",
)


def pipeline_templates() -> dict[str, tuple[str, int]]:
    """`{pipeline class name: (prompt template, tokens dropped)}` read from installed diffusers.

    The pipelines set both in `__init__`, which accepts empty components, so the values always
    match the diffusers version that will run the tiny models.
    """
    from diffusers import QwenImageEditPipeline, QwenImageEditPlusPipeline, QwenImagePipeline

    found = {}
    for cls, parts in (
        (QwenImagePipeline, 5),
        (QwenImageEditPipeline, 6),
        (QwenImageEditPlusPipeline, 6),
    ):
        pipe: Any = cls(*([None] * parts))
        found[cls.__name__] = (pipe.prompt_template_encode, pipe.prompt_template_encode_start_idx)
    return found


def template_prefix(template: str) -> str:
    """The part of a prompt template that the pipeline drops: up to and including the user turn."""
    end = template.index(USER_TURN) + len(USER_TURN)
    return template[:end]


def template_prefix_length(tokenizer: Qwen2Tokenizer, template: str) -> int:
    return len(tokenizer(template_prefix(template)).input_ids)


def _training_text(templates: list[str]) -> list[str]:
    filled = [t.format("a photo of a cat, make it blue") for t in templates]
    return filled * TEMPLATE_WEIGHT + list(GENERAL_TEXT) * 4


def train_tokenizer(vocab_size: int = VOCAB_SIZE) -> Qwen2Tokenizer:
    """Trains the BPE (deterministic for the same inputs) and wraps it as a Qwen2Tokenizer."""
    templates = [template for template, _ in pipeline_templates().values()]
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_training_text(templates), trainer)
    merges: Any = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" "))
        for m in json.loads(bpe.to_str())["model"]["merges"]
    ]
    return Qwen2Tokenizer(
        vocab=bpe.get_vocab(),
        merges=merges,
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=32768,
    )


def special_token_ids(tokenizer: Qwen2Tokenizer) -> dict[str, int]:
    ids: dict[str, Any] = {
        token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS
    }
    return {token: int(value) for token, value in ids.items()}
