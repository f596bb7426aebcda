"""The gateway's one check of an edit's mask: it must be the size of the image it applies to
(the first input image, as OpenAI's edits apply it), answered 400 naming both sizes before any
model is called. The model servers read the mask itself (`modelserver.inpainting`)."""

from __future__ import annotations

import io

from PIL import Image

from services.gateway.errors import invalid


def size_of(data: bytes) -> tuple[int, int]:
    """Width and height from the header (the bytes were already checked to be an image)."""
    with Image.open(io.BytesIO(data)) as probe:
        return probe.size


def check_mask_size(image: bytes, mask: bytes, image_param: str) -> None:
    (iw, ih), (mw, mh) = size_of(image), size_of(mask)
    if (iw, ih) != (mw, mh):
        raise invalid(
            f"mask is {mw}x{mh} but {image_param} is {iw}x{ih}; send a mask of the image's size "
            "(transparent, or white in a mask without alpha, where the picture may change)",
            "mask",
        )
