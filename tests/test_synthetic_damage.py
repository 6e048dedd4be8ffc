"""Synthetic damage: labels match what is drawn, seeded determinism, 8/16-bit and 1/3/4 channels."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from lab.synthesis.cracks import craquelure_mask
from lab.synthesis.synthetic_damage import CRAQUELURE, PAINT_LOSS, DamageConfig, paint_loss_mask, synthesize_damage

ALWAYS = DamageConfig(p_craquelure=1.0, p_paint_loss=1.0, loss_amount=(1.0, 2.0))


def _painting(h: int = 192, w: int = 224, c: int = 3, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    base = np.full((h, w, c), 0.5, np.float32) + rng.normal(0, 0.01, (h, w, c))
    return np.clip(base * top, 0, top).astype(dtype)


def test_same_seed_gives_same_damage_and_other_seed_differs() -> None:
    image = _painting()
    a_img, a_lab = synthesize_damage(image, 5, ALWAYS)
    b_img, b_lab = synthesize_damage(image, 5, ALWAYS)
    c_img, c_lab = synthesize_damage(image, 6, ALWAYS)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_lab, c_lab)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_keeps_shape_dtype_and_alpha(dtype, channels) -> None:
    image = _painting(c=channels, dtype=dtype)
    damaged, labels = synthesize_damage(image, 3, ALWAYS)
    assert damaged.shape == image.shape and damaged.dtype == image.dtype
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2}
    if channels == 4:
        assert np.array_equal(damaged[:, :, 3], image[:, :, 3])


def test_labels_match_the_drawn_damage() -> None:
    image = _painting(256, 256)
    for seed in range(4):
        damaged, labels = synthesize_damage(image, seed, ALWAYS)
        change = np.abs(damaged.astype(np.float32) - image.astype(np.float32)).max(axis=2) / 255
        damage = labels > 0
        assert (labels == CRAQUELURE).any() and (labels == PAINT_LOSS).any()
        # Labelled pixels are visibly changed ...
        assert np.mean(change[damage] > 0.08) > 0.9
        # ... and strongly changed pixels are labelled or touch a label (soft edges, cup highlights).
        near = ndimage.binary_dilation(damage, iterations=3)
        assert np.mean(near[change > 0.15]) > 0.99


def test_craquelure_is_a_connected_network_of_thin_cracks() -> None:
    mask = craquelure_mask((256, 256), seed=11, cell=40.0, keep=1.0, partial=0.0)
    assert mask.dtype == bool and 0.02 < mask.mean() < 0.35
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    largest = np.bincount(labels.ravel())[1:].max()
    assert largest > 0.8 * mask.sum()
    # Thin: eroding by 4 px removes nearly everything (cracks are at most 6 px wide).
    assert ndimage.binary_erosion(mask, iterations=4).sum() < 0.02 * mask.sum()
    assert np.array_equal(mask, craquelure_mask((256, 256), seed=11, cell=40.0, keep=1.0, partial=0.0))


def test_paint_loss_sits_mostly_on_cracks() -> None:
    cracks = craquelure_mask((256, 256), seed=2)
    loss = paint_loss_mask((256, 256), seed=3, cracks=cracks)
    assert loss.any()
    near_cracks = ndimage.binary_dilation(cracks, iterations=15)
    assert np.mean(near_cracks[loss]) > 0.6


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="p_craquelure"):
        DamageConfig(p_craquelure=1.5)
    with pytest.raises(ValueError, match="loss_amount"):
        DamageConfig(loss_amount=(2.0, 1.0))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        synthesize_damage(np.zeros((8, 8, 3), np.float32), 0)
    with pytest.raises(TypeError, match="unknown craquelure option"):
        craquelure_mask((32, 32), 0, nonsense=1.0)


def test_a_megapixel_image_is_damaged_quickly() -> None:
    image = np.full((1024, 1024, 3), 128, np.uint8)
    start = time.process_time()  # CPU time: robust to other jobs on a shared machine
    synthesize_damage(image, 1, ALWAYS)
    assert time.process_time() - start < 3.0  # ~0.3 s on one core


def test_opt_in_styles_leave_the_default_stream_unchanged() -> None:
    image = _painting()
    default = synthesize_damage(image, 9, ALWAYS)
    zeroed = synthesize_damage(image, 9, DamageConfig(**{**ALWAYS.__dict__, "p_free_cracks": 0.0, "p_texture": 0.0}))
    free = synthesize_damage(image, 9, DamageConfig(**{**ALWAYS.__dict__, "p_free_cracks": 1.0}))
    assert all(np.array_equal(a, b) for a, b in zip(default, zeroed, strict=True))
    assert not np.array_equal(default[1], free[1])


def test_free_cracks_are_isolated_thin_labelled_cracks() -> None:
    image = _painting(256, 256)
    cfg = DamageConfig(p_craquelure=1.0, p_paint_loss=0.0, p_free_cracks=1.0)
    networks = DamageConfig(p_craquelure=1.0, p_paint_loss=0.0)
    for seed in range(4):
        damaged, labels = synthesize_damage(image, seed, cfg)
        cracks = labels == CRAQUELURE
        assert cracks.any() and not (labels == PAINT_LOSS).any()
        change = np.abs(damaged.astype(np.float32) - image.astype(np.float32)).max(axis=2) / 255
        assert np.mean(change[cracks] > 0.08) > 0.9
        assert np.mean(ndimage.binary_dilation(cracks, iterations=3)[change > 0.15]) > 0.99
        assert ndimage.binary_erosion(cracks, iterations=4).sum() < 0.02 * cracks.sum()  # <= 6 px wide
        # A few cracks, far sparser than a network over the same image.
        assert cracks.mean() < 0.5 * (synthesize_damage(image, seed, networks)[1] == CRAQUELURE).mean()


def test_texture_changes_the_surface_but_labels_no_damage() -> None:
    image = _painting()
    damaged, labels = synthesize_damage(image, 4, DamageConfig(p_craquelure=0.0, p_paint_loss=0.0, p_texture=1.0))
    assert not labels.any()
    assert damaged.astype(np.float32).std() > 3 * image.astype(np.float32).std()  # grain, specks, mottling


def test_lower_crack_contrast_draws_the_same_cracks_fainter() -> None:
    image = _painting(256, 256)
    cracks_only = {"p_craquelure": 1.0, "p_paint_loss": 0.0}
    strong = synthesize_damage(image, 5, DamageConfig(**cracks_only, crack_contrast=(0.9, 0.95)))
    faint = synthesize_damage(image, 5, DamageConfig(**cracks_only, crack_contrast=[0.2, 0.25]))  # JSON: a list
    assert np.array_equal(strong[1], faint[1])  # the contrast draw does not move the random stream
    cracks = strong[1] == CRAQUELURE

    def change(damaged: np.ndarray) -> float:
        return float(np.abs(damaged.astype(np.float32) - image.astype(np.float32))[cracks].mean())

    assert 0.1 < change(faint[0]) / change(strong[0]) < 0.4


def test_opt_in_probabilities_are_checked() -> None:
    for name in ("p_free_cracks", "p_texture"):
        with pytest.raises(ValueError, match=name):
            DamageConfig(**{name: -0.1})
