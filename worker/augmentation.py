"""Random changes to whole training batches, on the training device: what makes a network read digits that are
not MNIST's (other writers, the dashboard's pad, fonts, photos).

Each batch is changed in four vectorised steps, each with its own random amount per image: stroke thickness
(3x3 max-pool dilation or erosion), one warp (an affine map and an elastic displacement field sampled together by
one ``grid_sample``), a Gaussian blur (a grouped convolution) and noise. The amounts come from a generator on the
device seeded from the job's seed, so the same seed repeats a run. The pure functions below are what the
augmenter applies, each usable (and tested) on its own.
"""

import math

import torch
import torch.nn.functional as F

from service.domain.training_config import Augmentation

# Added to the job's seed so that the augmenter's random stream is not the batch order's (seeded with the seed).
_STREAM_OFFSET = 0x5EED


class BatchAugmenter:
    """Changes each batch at random within the bounds of ``augmentation``; does nothing (and draws no random
    number) when every bound is 0."""

    def __init__(self, augmentation: Augmentation, seed: int, device: torch.device):
        self.bounds = augmentation
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed + _STREAM_OFFSET)
        self._upsampling: torch.Tensor | None = None  # the elastic field's, made for the first batch's side

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: (batch, 1, side, side) in 0..1 (ink 1, background 0); returns new ones, the same shape."""
        bounds = self.bounds
        if not bounds.enabled:
            return images
        count = len(images)
        if bounds.thickness:
            images = change_thickness(images, self._uniform(count, bounds.thickness), bounds.thickness)
        if bounds.rotation or bounds.scale or bounds.shift or bounds.shear or bounds.elastic:
            theta = affine_matrices(
                rotation=self._uniform(count, bounds.rotation),
                scale_x=1 + self._uniform(count, bounds.scale),
                scale_y=1 + self._uniform(count, bounds.scale),
                shear=self._uniform(count, bounds.shear),
                shift_x=self._uniform(count, bounds.shift),
                shift_y=self._uniform(count, bounds.shift),
                side=images.shape[-1],
            )
            displacement = self._elastic_field(count, images.shape[-1]) if bounds.elastic else None
            images = warp(images, theta, displacement)
        if bounds.blur:
            images = gaussian_blur(images, bounds.blur * self._random(count), bounds.blur)
        if bounds.noise:
            noise = torch.randn(images.shape, generator=self.generator, device=self.device)
            images = (images + bounds.noise * noise).clamp(0.0, 1.0)
        return images

    def _random(self, count: int) -> torch.Tensor:
        return torch.rand(count, generator=self.generator, device=self.device)

    def _uniform(self, count: int, bound: float) -> torch.Tensor:
        """``count`` amounts drawn uniformly within ± ``bound``."""
        return (2 * self._random(count) - 1) * bound

    def _elastic_field(self, count: int, side: int) -> torch.Tensor:
        """A smooth random displacement per image, (count, 2, side, side) in grid_sample's units: independent
        Gaussian displacements on a coarse grid (one point every ``elastic_scale`` pixels), upsampled bicubically."""
        if self._upsampling is None:
            points = max(2, round(side / self.bounds.elastic_scale) + 1)
            self._upsampling = bicubic_upsampling(points, side, self.device)
        upsampling = self._upsampling
        points = upsampling.shape[1]
        coarse = torch.randn((count, 2, points, points), generator=self.generator, device=self.device)
        coarse = coarse * self.bounds.elastic * 2 / side  # pixels to grid units (the image spans -1..1)
        return upsampling @ coarse @ upsampling.T


def bicubic_upsampling(points: int, side: int, device: torch.device) -> torch.Tensor:
    """The (side, points) matrix of bicubic upsampling (corners aligned): ``U @ field @ U.T`` is what
    ``F.interpolate(field, mode="bicubic")`` computes, in two small matrix products (10x faster on a CPU)."""
    one_hot_columns = torch.eye(points, device=device).view(points, 1, points, 1)
    return F.interpolate(one_hot_columns, size=(side, 1), mode="bicubic", align_corners=True)[:, 0, :, 0].T


def affine_matrices(
    rotation: torch.Tensor,
    scale_x: torch.Tensor,
    scale_y: torch.Tensor,
    shear: torch.Tensor,
    shift_x: torch.Tensor,
    shift_y: torch.Tensor,
    side: int,
) -> torch.Tensor:
    """The ``theta`` of ``F.affine_grid`` (batch, 2, 3) that moves each image's content as told: scaled about the
    centre, slanted (``shear`` degrees; positive leans the top to the right), rotated (``rotation`` degrees,
    positive counter-clockwise as seen), then shifted (pixels; positive right and down). ``affine_grid`` maps
    each output pixel to where it is read from, so theta is the inverse of that content map."""
    angle, slant = torch.deg2rad(rotation), torch.tan(torch.deg2rad(shear))
    cos, sin, zero, one = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle), torch.ones_like(angle)
    # Grid coordinates: x to the right, y downwards, so a counter-clockwise turn on screen is [[c, s], [-s, c]].
    rotate = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    slant_matrix = torch.stack([torch.stack([one, -slant], -1), torch.stack([zero, one], -1)], -2)
    scale = torch.diag_embed(torch.stack([scale_x, scale_y], -1))
    content = rotate @ slant_matrix @ scale
    shift = torch.stack([shift_x, shift_y], -1) * 2 / side  # pixels to grid units
    inverse = torch.linalg.inv(content)
    return torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], -1)


def warp(images: torch.Tensor, theta: torch.Tensor, displacement: torch.Tensor | None = None) -> torch.Tensor:
    """``images`` resampled (bilinear, empty outside) through the affine ``theta`` plus an optional per-pixel
    ``displacement`` (batch, 2, side, side) of where each pixel is read from."""
    grid = sampling_grid(theta, images.shape[-1])
    if displacement is not None:
        grid = grid + displacement
    return F.grid_sample(images, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros", align_corners=False)


def sampling_grid(theta: torch.Tensor, side: int) -> torch.Tensor:
    """``F.affine_grid(theta, (batch, 1, side, side), align_corners=False)``, channels first (batch, 2, side, side):
    one matrix product, 40x faster than affine_grid on a CPU."""
    centres = (torch.arange(side, device=theta.device, dtype=theta.dtype) * 2 + 1) / side - 1
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    pixels = torch.stack([x.flatten(), y.flatten(), torch.ones_like(x.flatten())])  # (3, side * side)
    return (theta.reshape(-1, 3) @ pixels).view(len(theta), 2, side, side)


def change_thickness(images: torch.Tensor, pixels: torch.Tensor, bound: float) -> torch.Tensor:
    """Strokes grown (``pixels`` > 0) or thinned (< 0) per image, by at most ``bound`` pixels (given, not read
    from the device, so that no batch waits for a GPU): whole steps of a 3x3 dilation (max-pool) or erosion
    (min-pool), and the fraction as a blend with the next step."""
    steps = math.ceil(bound)
    if steps == 0:
        return images
    grown, thinned = [images], [images]
    for _ in range(steps):
        grown.append(dilate(grown[-1]))
        thinned.append(-dilate(-thinned[-1]))
    levels = torch.stack(thinned[:0:-1] + grown)  # (2 * steps + 1, batch, ...): thinnest to thickest
    position = pixels + steps
    lower = position.floor().long().clamp(max=2 * steps - 1)
    fraction = (position - lower).view(-1, 1, 1, 1)
    image = torch.arange(len(images), device=images.device)
    return torch.lerp(levels[lower, image], levels[lower + 1, image], fraction)


def dilate(images: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(images, 3, stride=1, padding=1)``, as the maximum of shifted views: 15x faster on a CPU
    (torch's stride-1 max-pool is not vectorised) and the same on a GPU."""
    padded = F.pad(images, (1, 1, 1, 1), value=-math.inf)  # as max_pool2d's padding: outside never wins
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, bound: float) -> torch.Tensor:
    """Each image blurred by a Gaussian of its own ``sigma`` (pixels, at most ``bound``; 0 leaves it as it is): a
    separable grouped convolution, one group per image."""
    count, channels, height, width = images.shape
    radius = max(1, math.ceil(3 * bound))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma.clamp(min=1e-3).unsqueeze(1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # (count * channels, taps)
    planes = images.reshape(1, count * channels, height, width)
    planes = F.conv2d(planes, kernel.view(-1, 1, 1, 2 * radius + 1), padding=(0, radius), groups=count * channels)
    planes = F.conv2d(planes, kernel.view(-1, 1, 2 * radius + 1, 1), padding=(radius, 0), groups=count * channels)
    return planes.view(count, channels, height, width)
