"""Augmentation: bounded config fields (422 naming the field), off in the tutorial, merged into a preset's; each
transform does what it says on known images; the same seed changes a batch the same way; a job with it trains,
and its validation images are never changed."""

import pytest
import torch
from torch import nn

from service.domain.network import build_network
from service.domain.training_config import PRESETS, Augmentation, TrainingConfig
from worker.augmentation import BatchAugmenter, affine_matrices, change_thickness, gaussian_blur, warp
from worker.training import Dataset, evaluate, host_dataset, train

CPU = torch.device("cpu")
SIDE = 28


@pytest.fixture(scope="module")
def mnist(mnist_data_dir) -> Dataset:
    return host_dataset(mnist_data_dir)


def blank(count: int = 1) -> torch.Tensor:
    return torch.zeros(count, 1, SIDE, SIDE)


def moved(images: torch.Tensor, **amounts: float) -> torch.Tensor:
    """``images`` through the affine map of ``amounts`` (rotation, scale_x, …), the others neutral."""
    neutral = {"rotation": 0.0, "scale_x": 1.0, "scale_y": 1.0, "shear": 0.0, "shift_x": 0.0, "shift_y": 0.0}
    count = len(images)
    values = {name: torch.full((count,), float(value)) for name, value in {**neutral, **amounts}.items()}
    return warp(images, affine_matrices(**values, side=SIDE))


@pytest.mark.parametrize(
    "augmentation, loc",
    [
        ({"rotation": 181}, "rotation"),
        ({"scale": -0.1}, "scale"),
        ({"shift": 15}, "shift"),
        ({"elastic_scale": 1}, "elastic_scale"),
        ({"thickness": 3}, "thickness"),
        ({"noise": "loud"}, "noise"),
        ({"twirl": 1}, "twirl"),  # unknown fields are refused too
    ],
)
def test_an_augmentation_out_of_bounds_is_a_422_naming_the_field(api, augmentation, loc):
    with api.client() as client:
        response = client.post("/jobs", json={"augmentation": augmentation})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "augmentation", loc]


def test_the_tutorial_has_no_augmentation_and_the_augmenter_then_leaves_batches_alone():
    assert PRESETS["tutorial"] == {}
    assert not TrainingConfig().augmentation.enabled
    images = torch.rand(4, 1, SIDE, SIDE)
    augmenter = BatchAugmenter(Augmentation(), seed=0, device=CPU)
    state = augmenter.generator.get_state()
    assert augmenter(images) is images
    assert torch.equal(augmenter.generator.get_state(), state)  # nothing drawn


def test_a_request_s_augmentation_fields_are_merged_into_its_preset_s():
    preset = PRESETS["handwriting"]["augmentation"]
    config = TrainingConfig(preset="handwriting", augmentation={"noise": 0.0})
    assert config.augmentation.noise == 0.0
    assert config.augmentation.rotation == preset["rotation"] > 0


def test_the_same_seed_changes_a_batch_the_same_way(mnist):
    bounds = Augmentation(rotation=15, scale=0.1, shift=2, shear=10, elastic=1, thickness=1, blur=1, noise=0.05)
    images = mnist.train_x[:64]

    def batches(seed: int) -> list[torch.Tensor]:
        augmenter = BatchAugmenter(bounds, seed, CPU)
        return [augmenter(images) for _ in range(2)]

    first, again, other = batches(5), batches(5), batches(6)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])  # each batch its own amounts
    assert not torch.equal(first[0], other[0])


def test_rotation_turns_the_image_counter_clockwise():
    images = blank()
    images[0, 0, 4:8, 10:20] = 1.0  # a bar at the top
    assert torch.allclose(moved(images, rotation=90), torch.rot90(images, 1, dims=(2, 3)), atol=1e-5)


def test_shift_moves_the_image_right_and_down_by_whole_pixels():
    images = blank()
    images[0, 0, 10:14, 10:14] = 1.0
    expected = torch.roll(images, shifts=(2, 3), dims=(2, 3))  # 2 down, 3 right
    assert torch.allclose(moved(images, shift_x=3, shift_y=2), expected, atol=1e-5)


def test_scale_enlarges_about_the_centre():
    images = blank()
    images[0, 0, 10:18, 10:18] = 1.0  # an 8x8 square in the middle
    bigger = moved(images, scale_x=1.5, scale_y=1.5)
    assert bigger.sum().item() == pytest.approx(12 * 12, rel=0.02)
    assert (bigger[0, 0, 9:19, 9:19] == 1.0).all()  # 12x12 about the centre: its inner 10x10 full
    assert bigger[0, 0, :7].sum() == 0 and bigger[0, 0, 21:].sum() == 0  # and its blended edges within 7 to 20


def test_shear_leans_the_top_to_the_right():
    images = blank()
    images[0, 0, 4:24, 13:15] = 1.0  # a vertical bar
    slanted = moved(images, shear=30)[0, 0]
    columns = torch.arange(SIDE, dtype=torch.float32)

    def ink_column(row: int) -> float:
        return (slanted[row] * columns).sum().item() / slanted[row].sum().item()

    assert ink_column(5) - ink_column(22) == pytest.approx(17 * 0.577, rel=0.05)  # tan 30° per row


def test_the_elastic_field_moves_pixels_smoothly_by_about_the_asked_amount():
    # On a horizontal ramp, bilinear sampling reads back each pixel's displacement along x.
    ramp = torch.arange(SIDE, dtype=torch.float32).expand(256, 1, SIDE, SIDE).clone()
    augmenter = BatchAugmenter(Augmentation(elastic=1.0), seed=0, device=CPU)
    dx = (augmenter(ramp) - ramp)[:, 0, 6:22, 6:22]  # away from the border, where zeros are read
    assert 0.6 < dx.std().item() < 1.1
    neighbour_difference = (dx[:, :, 1:] - dx[:, :, :-1]).abs().mean().item()
    assert neighbour_difference < 0.25 * dx.abs().mean().item()


def test_thickness_dilates_and_erodes_the_strokes():
    images = blank(5)
    images[:, 0, 4:8, 10:18] = 1.0  # 4x8 = 32 pixels of ink
    ink = change_thickness(images, torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0]), bound=2.0).sum((1, 2, 3))
    # Eroded to 2x6; unchanged; half-way to the dilated; 6x10; 8x12.
    assert ink.tolist() == pytest.approx([12, 32, (32 + 60) / 2, 60, 96])


def test_blur_spreads_a_dot_by_its_sigma_and_keeps_the_ink():
    images = blank(3)
    images[:, 0, 14, 14] = 1.0
    blurred = gaussian_blur(images, torch.tensor([0.0, 1.0, 2.0]), bound=2.0)
    offsets = (torch.arange(SIDE, dtype=torch.float32) - 14) ** 2
    spread = (blurred[:, 0].sum(1) * offsets).sum(1).sqrt()  # the standard deviation along x
    assert torch.equal(blurred[0], images[0])
    assert spread[1:].tolist() == pytest.approx([1.0, 2.0], rel=0.03)
    assert blurred.sum((1, 2, 3)).tolist() == pytest.approx([1.0, 1.0, 1.0], rel=1e-4)


def test_noise_has_the_asked_standard_deviation():
    grey = torch.full((64, 1, SIDE, SIDE), 0.5)
    noisy = BatchAugmenter(Augmentation(noise=0.1), seed=0, device=CPU)(grey)
    assert (noisy - grey).std().item() == pytest.approx(0.1, rel=0.03)


class _ValidationKeeper(nn.Module):
    """Remembers the images it is shown in eval mode (the validation images)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(SIDE * SIDE, 10)
        self.validated: list[torch.Tensor] = []

    def forward(self, x):
        if not self.training:
            self.validated.append(x.clone())
        return self.linear(x.flatten(1))


def test_a_job_with_augmentation_learns_and_never_changes_the_validation_images(mnist):
    fields = {"train_batches": 120, "optimizer": "adam", "learning_rate": 0.01, "test_every": 60}
    bounds = {"rotation": 10, "scale": 0.1, "shift": 2, "shear": 10, "elastic": 1, "thickness": 0.5, "noise": 0.05}
    config = TrainingConfig(**fields, augmentation=bounds, seed=0)
    network = build_network(config)
    points = [(p.loss, p.accuracy) for p in train(network, config, mnist)]
    assert evaluate(network, mnist.test_x, mnist.test_y)[1] > 0.85
    repeated = build_network(config)
    assert [(p.loss, p.accuracy) for p in train(repeated, config, mnist)] == points  # the seed repeats the run

    keeper = _ValidationKeeper()
    validation = TrainingConfig(train_batches=2, test_every=1, holdout=1000, augmentation=bounds, seed=0)
    list(train(keeper, validation, mnist))
    assert len(keeper.validated) == 2
    assert all(torch.equal(images, mnist.train_x[-1000:]) for images in keeper.validated)
