import numpy as np
from photosplat_trainer.export.prune import camera_extent, prune_floaters
from photosplat_trainer.gaussians import GaussianSet


def scene(n: int = 200, seed: int = 0) -> GaussianSet:
    rng = np.random.default_rng(seed)
    f = np.float32
    return GaussianSet(
        means=rng.uniform(-1, 1, (n, 3)).astype(f),
        log_scales=np.full((n, 3), np.log(0.02), f),
        quats=np.tile(np.array([1, 0, 0, 0], f), (n, 1)),
        opacity_logits=np.full(n, 2.0, f),
        sh0=np.zeros((n, 1, 3), f),
        shN=np.zeros((n, 15, 3), f),
    )


def ring_of_cameras(radius: float = 4.0, count: int = 12) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([radius * np.cos(angles), np.zeros(count), radius * np.sin(angles)], axis=1)


def test_keeps_a_clean_scene() -> None:
    g = scene()
    result = prune_floaters(g, ring_of_cameras())
    assert result.counts == {"non_finite": 0, "low_opacity": 0, "huge_scale": 0, "far": 0, "kept": 200}
    np.testing.assert_array_equal(result.gaussians.means, g.means)


def test_drops_each_kind_of_floater_and_counts_it_once() -> None:
    g = scene()
    g.opacity_logits[0:5] = -8.0  # alpha 0.0003
    g.log_scales[5:8] = np.log(10.0)  # extent is 4.4: a 10-unit blob is huge
    g.means[8:10] = [500.0, 0.0, 0.0]  # 500 units from a 4-unit capture
    g.means[10] = np.nan
    g.opacity_logits[11] = -np.inf
    g.opacity_logits[12] = -8.0
    g.log_scales[12] = np.log(10.0)  # both transparent and huge: counted as low_opacity only
    result = prune_floaters(g, ring_of_cameras())
    assert result.counts == {"non_finite": 2, "low_opacity": 6, "huge_scale": 3, "far": 2, "kept": 187}
    assert len(result.gaussians) == 187
    assert np.isfinite(result.gaussians.means).all()
    assert result.gaussians.shN.shape == (187, 15, 3)


def test_forward_facing_capture_keeps_its_distant_scene() -> None:
    # Cameras 0.2 apart looking at content 5-8 units away: the camera extent alone would cut it.
    g = scene()
    g.means[:, 2] = np.linspace(5, 8, len(g))
    g.log_scales[0] = np.log(1.5)  # a big background blob, far larger than the camera spread
    cameras = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, 0.2, 0.0]])
    counts = prune_floaters(g, cameras).counts
    assert counts["far"] == 0 and counts["kept"] == len(g)


def test_camera_extent() -> None:
    assert np.isclose(camera_extent(ring_of_cameras(radius=4.0)), 4.4)
    assert camera_extent(np.zeros((0, 3))) == 0.0


def test_empty_set() -> None:
    result = prune_floaters(scene(0), ring_of_cameras())
    assert len(result.gaussians) == 0 and result.counts["kept"] == 0
