"""What a call consumed in tokens, in OpenAI's image usage terms (issue 15), counted here
because only the model server has the model's own tokenizer.

- input text tokens: the prompt's tokens by the pipeline's tokenizer, plus the negative prompt's
  when there is one (true CFG encodes it too); the chat template the pipeline wraps around them
  and then drops is not counted;
- input image tokens: what the input images add to the transformer's sequence, (width/16) x
  (height/16) latent patches each, at the size the pipeline encodes them (`image_tokens`);
- output tokens: (width/16) x (height/16) per image made: the image tokens the transformer
  denoised (8x VAE downsampling, then 2x2 latent packing).

The counter keeps its own copy of the tokenizer: the pipeline thread calls its tokenizer with
padding and truncation, which a fast tokenizer applies by changing its state, so counting with the
same object from the event loop could collide with it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

PATCH = 16  # pixels per image token side: VAE factor 8 x 2x2 packing


def image_tokens(width: int, height: int) -> int:
    """Latent patches of one image of `width` x `height` pixels."""
    return (width // PATCH) * (height // PATCH)


@dataclass(frozen=True)
class InputTokens:
    text: int = 0
    image: int = 0


class TokenCounter:
    """Counts text with a private copy of a pipeline's tokenizer (none: counts are 0)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = copy.deepcopy(tokenizer) if tokenizer is not None else None

    @classmethod
    def of(cls, pipe: Any) -> TokenCounter:
        return cls(getattr(pipe, "tokenizer", None))

    def count(self, text: str | None) -> int:
        if not text or self._tokenizer is None:
            return 0
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def text_tokens(self, prompt: str, negative_prompt: str | None) -> int:
        return self.count(prompt) + self.count(negative_prompt)
