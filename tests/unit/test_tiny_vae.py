"""The tiny VAE behaves as a trained one does where inpainting depends on it: its posterior is
nearly a point (a sample is the mean), and its round trip is local (a change in one half of the
picture leaves the decoded far side of the other half as it was)."""

from __future__ import annotations

import torch

from services.tinymodels import components


def test_the_posterior_is_nearly_a_point_and_the_round_trip_local() -> None:
    vae = components.vae().eval()
    torch.manual_seed(0)
    image = torch.rand(1, 3, 1, 64, 256) * 2 - 1
    changed = image.clone()
    changed[..., :128] = -image[..., :128]  # the left half only
    with torch.no_grad():
        posterior = vae.encode(image).latent_dist
        assert float(posterior.std.max()) < 1e-5
        sample = posterior.sample(torch.Generator().manual_seed(1))
        assert torch.allclose(sample, posterior.mode(), atol=1e-5)
        before = vae.decode(posterior.mode()).sample
        after = vae.decode(vae.encode(changed).latent_dist.mode()).sample
    moved = (before - after).abs()  # pixel values are -1..1
    # The decoder's reach is tens of pixels and fades: the far end of the right half is as it was.
    assert float(moved[..., 224:].max()) < 0.01 < 0.05 < float(moved[..., :128].mean())
