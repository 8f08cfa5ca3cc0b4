"""Pose refinement: the 6D rotation form, the correction's identity start, and that optimising the
correction alone moves a perturbed camera back towards the one that took the photo."""

from __future__ import annotations

import math

import torch
from photosplat_trainer.backends.cpu import CpuBackend
from photosplat_trainer.dataset import View
from photosplat_trainer.poses import PoseCorrection, rotation_from_6d

torch.set_num_threads(1)


def test_the_6d_form_gives_rotations_and_the_identity_at_its_start() -> None:
    d6 = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = rotation_from_6d(d6)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(50, dtype=torch.float64))
    assert torch.equal(rotation_from_6d(torch.tensor([1.0, 0, 0, 0, 1, 0])), torch.eye(3))


def test_a_fresh_correction_leaves_the_cameras_as_they_are() -> None:
    viewmats = torch.eye(4).repeat(3, 1, 1)
    viewmats[:, :3, 3] = torch.randn(3, 3)
    assert torch.allclose(PoseCorrection(5)(viewmats, torch.tensor([0, 2, 4])), viewmats)


def _scene(n: int = 1500) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([3.0, 2.0, 1.0]) + torch.tensor([0.0, 0.0, 4.0])
    return {
        "means": means,
        "scales": torch.log(torch.full((n, 3), 0.06)),
        "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        "opacities": torch.full((n,), 2.0),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.zeros(n, 0, 3),
    }


def test_optimising_the_correction_recovers_a_perturbed_pose() -> None:
    backend = CpuBackend()
    params = {k: torch.nn.Parameter(v) for k, v in _scene().items()}
    width, height = 64, 48
    f = width / (2 * math.tan(math.radians(30)))
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    truth = torch.eye(4)
    bg = torch.zeros(3)
    with torch.no_grad():
        target = backend.render(params, View("t", torch.zeros(height, width, 3), K, truth, 0), 0, bg).image
    a = math.radians(2.0)
    perturbed = torch.eye(4)
    perturbed[:3, :3] = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
    perturbed[:3, 3] = torch.tensor([0.06, -0.04, 0.0])
    view = View("p", target, K, perturbed, 0)

    correction = PoseCorrection(1)
    opt = torch.optim.Adam(correction.parameters(), lr=5e-3)
    index = torch.tensor([0])

    def error() -> float:
        with torch.no_grad():
            return float((correction(perturbed[None], index)[0] - truth).abs().sum())

    before = error()
    for _ in range(120):
        vm = correction(perturbed[None], index)[0]
        image = backend.render(params, view, 0, bg, viewmat=vm).image
        loss = (image - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    print(f"pose error {before:.4f} -> {after:.4f}")
    assert after < 0.3 * before
