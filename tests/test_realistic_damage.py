"""The realistic damage style: labels cover every visible change, determinism, 8/16 bit and channels, hard
negatives unlabelled, real crack shapes used (from a tiny stand-in data folder, so the test runs anywhere)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from lab.synthesis import crack_shapes
from lab.synthesis.realistic import LABEL_TOLERANCE, realistic_damage
from lab.synthesis.synthetic_damage import CRAQUELURE, PAINT_LOSS, DamageConfig, synthesize_damage


def _painting(h: int = 160, w: int = 192, c: int = 3, dtype=np.uint8) -> np.ndarray:
    """A smooth colour gradient with a little texture, like a patch of paint."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.3 + 0.4 * xx, 0.5 - 0.2 * yy, 0.25 + 0.2 * xx * yy], -1)[..., :c] if c >= 3 else (
        0.3 + 0.4 * xx)[..., None]
    if c == 4:
        base = np.concatenate([np.stack([0.3 + 0.4 * xx, 0.5 - 0.2 * yy, 0.25 + 0.0 * xx], -1),
                               np.full((h, w, 1), 0.8)], -1)
    top = np.iinfo(dtype).max
    return np.clip((base + rng.normal(0, 0.01, base.shape)) * top, 0, top).astype(dtype)


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in nga_craquelure_maps folder holding one real-looking map: a grid of wavy lines."""
    root = tmp_path_factory.mktemp("shared")
    maps = root / "nga_craquelure_maps" / "maps"
    maps.mkdir(parents=True)
    m = np.zeros((256, 256), np.uint8)
    for k in range(16, 256, 48):
        xs = np.arange(256)
        cv2.polylines(m, [np.stack([xs, k + 6 * np.sin(xs / 9)], 1).astype(np.int32)], False, 255, 2)
        cv2.polylines(m, [np.stack([k + 6 * np.sin(xs / 11), xs], 1).astype(np.int32)], False, 255, 2)
    cv2.imwrite(str(maps / "Dutch_1.png"), m)
    with (root / "nga_craquelure_maps" / "index.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stem", "bw_source_path@b99df9e", "width", "height", "crack_fraction"])
        writer.writerow(["Dutch_1", "x", 256, 256, f"{(m > 0).mean():.4f}"])
        writer.writerow(["Dutch_2", "x", 256, 256, "0.5000"])  # too much 'crack': filtered out
    return root


def _cfg(root: Path, **kw: float) -> DamageConfig:
    opts = {"style": "realistic", "p_craquelure": 1.0, "p_paint_loss": 1.0, "loss_amount": (1.0, 2.0),
            "shapes_root": str(root), **kw}
    return DamageConfig(**opts)


def test_every_visible_change_is_labelled_and_labels_are_damage(shapes_root: Path) -> None:
    image = _painting()
    for seed in range(6):
        r = realistic_damage(image, seed, _cfg(shapes_root))
        assert (r.labels == CRAQUELURE).any() and (r.labels == PAINT_LOSS).any()
        change = np.abs(r.damaged.astype(np.float32) - r.clean.astype(np.float32)).max(axis=2) / 255
        # Beyond the sensor's noise and JPEG ringing, no changed pixel is left unlabelled: filling the
        # labels leaves no ghost of the damage.
        unlabelled = (change > 0.12) & (r.labels == 0)
        assert unlabelled.sum() <= 0.0005 * change.size, f"seed {seed}: {unlabelled.sum()} changed px unlabelled"
        # Labels are damage: nearly every labelled pixel is changed visibly (faint crack cores included).
        assert np.mean(change[r.labels > 0] > 0.01) > 0.9


def test_labels_cover_changes_exactly_without_photography(shapes_root: Path) -> None:
    image = _painting()
    for seed in range(4):
        r = realistic_damage(image, seed, _cfg(shapes_root, p_photography=0.0))
        change = np.abs(r.damaged.astype(np.float32) - r.clean.astype(np.float32)).max(axis=2) / 255
        assert not ((change > LABEL_TOLERANCE + 1 / 255) & (r.labels == 0)).any()


def test_same_seed_same_damage_other_seed_differs(shapes_root: Path) -> None:
    image = _painting()
    a, b, c = (realistic_damage(image, s, _cfg(shapes_root)) for s in (3, 3, 4))
    assert np.array_equal(a.damaged, b.damaged) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_8_and_16_bit_any_channels(shapes_root: Path, dtype, channels) -> None:
    image = _painting(c=channels, dtype=dtype)
    damaged, labels = synthesize_damage(image, 2, _cfg(shapes_root))
    assert damaged.shape == image.shape and damaged.dtype == image.dtype
    assert labels.shape == image.shape[:2] and set(np.unique(labels)) <= {0, 1, 2} and labels.any()
    if channels == 4:
        assert np.array_equal(damaged[:, :, 3], image[:, :, 3])
    if dtype == np.uint16:  # the full 16-bit range is used, not 8 bits scaled up
        assert np.any(damaged[:, :, 0] % 257 != 0)


def test_hard_negatives_are_painted_but_never_labelled(shapes_root: Path) -> None:
    image = _painting(256, 256)
    painted = 0
    for seed in range(8):
        r = realistic_damage(image, seed, _cfg(shapes_root, p_craquelure=0.0, p_paint_loss=0.0, p_negatives=1.0))
        assert not r.labels.any()
        painted += int((r.negatives > 0.5).sum())
    assert painted > 200  # thin lines, lace, inscriptions were really drawn


def test_wide_strokes_and_birds_are_painted_unlabelled_and_leave_the_rest_alone(shapes_root: Path) -> None:
    image = _painting(256, 256)
    widths = []
    for seed in range(6):
        off = realistic_damage(image, seed, _cfg(shapes_root, p_photography=0.0))
        on = realistic_damage(image, seed, _cfg(shapes_root, p_photography=0.0, p_strokes=1.0))
        only = realistic_damage(image, seed, _cfg(shapes_root, p_craquelure=0.0, p_paint_loss=0.0,
                                                  p_negatives=0.0, p_photography=0.0, p_strokes=1.0))
        assert not only.labels.any() and (only.negatives > 0.5).any(), f"seed {seed}"
        assert np.array_equal(only.damaged, only.clean)  # paint, not damage: it is in the clean picture too
        # Their own random stream: the same damage is drawn, so labels differ only next to a stroke (a crack's
        # colour and a loss's edge follow the paint under them).
        near = cv2.dilate((only.negatives > 0.05).astype(np.uint8), np.ones((13, 13), np.uint8)) > 0
        assert np.array_equal(on.labels[~near], off.labels[~near]), f"seed {seed}"
        dist = cv2.distanceTransform((only.negatives > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
        widths.append(2 * dist.max())
    assert max(widths) >= 3.0  # wider than the thin-line negatives (at most 2.5 px)


def test_stroke_kinds_are_checked() -> None:
    from lab.synthesis.negatives import paint_strokes

    rgb = np.full((64, 64, 3), 0.6, np.float32)
    painted, cover = paint_strokes(rgb, np.random.default_rng(0), ("bird",))
    assert painted.shape == rgb.shape and cover.shape == (64, 64)
    with pytest.raises(ValueError, match="unknown stroke kind"):
        paint_strokes(rgb, np.random.default_rng(0), ("staff",))
    with pytest.raises(ValueError, match="p_strokes"):
        DamageConfig(style="realistic", p_strokes=1.5)


def test_real_crack_shapes_are_used(shapes_root: Path) -> None:
    image = _painting()
    r = realistic_damage(image, 1, _cfg(shapes_root, p_real_shapes=1.0, p_paint_loss=0.0))
    assert r.sources and set(r.sources) == {"Dutch_1.png"}  # Dutch_2 is filtered out by its crack fraction
    procedural = realistic_damage(image, 1, _cfg(shapes_root, p_real_shapes=0.0, p_paint_loss=0.0))
    assert procedural.sources == ()


def test_faint_share_and_crack_width_steer_the_cracks(shapes_root: Path) -> None:
    image = _painting(256, 256)
    cracks_only = {"p_paint_loss": 0.0, "p_negatives": 0.0, "p_photography": 0.0}

    def mean_change(**kw: object) -> float:
        total = 0.0
        for seed in range(4):
            r = realistic_damage(image, seed, _cfg(shapes_root, **cracks_only, **kw))
            change = np.abs(r.damaged.astype(np.float32) - r.clean.astype(np.float32)).max(axis=2)
            total += float(change[r.labels == CRAQUELURE].mean())
        return total / 4

    assert mean_change(p_faint_cracks=1.0) < 0.6 * mean_change(p_faint_cracks=0.0)

    def labelled(width: tuple[float, float]) -> int:
        return sum(int((realistic_damage(image, seed, _cfg(shapes_root, **cracks_only, p_real_shapes=1.0,
                                                           crack_width=width)).labels > 0).sum())
                   for seed in range(4))

    assert labelled((1.0, 1.0)) < labelled((3.0, 3.0))
    with pytest.raises(ValueError, match="crack_width must be an increasing range"):
        DamageConfig(crack_width=(2.0, 1.0))
    with pytest.raises(ValueError, match="p_faint_cracks must be in"):
        DamageConfig(p_faint_cracks=1.5)


def test_core_contrast_labels_dark_cracks_on_dark_paint_as_they_are_seen(shapes_root: Path) -> None:
    cracks_only = {"p_paint_loss": 0.0, "p_negatives": 0.0, "p_photography": 0.0, "p_real_shapes": 1.0,
                   "p_faint_cracks": 1.0}
    dark = (_painting(256, 256).astype(np.float32) * 0.2).astype(np.uint8)  # paint of luminance about 0.08
    light = _painting(256, 256)

    def labels(image: np.ndarray, **kw: float) -> tuple[int, int]:
        """(craquelure pixels labelled, of them unchanged by more than 1.5 levels) over 6 seeds."""
        total = unchanged = 0
        for seed in range(6):
            r = realistic_damage(image, seed, _cfg(shapes_root, **cracks_only, **kw))
            change = np.abs(r.damaged.astype(np.float32) - r.clean.astype(np.float32)).max(axis=2) / 255
            crack = r.labels == CRAQUELURE
            total += int(crack.sum())
            unchanged += int((crack & (change < 1.5 / 255)).sum())
        return total, unchanged

    plain, relative = labels(dark), labels(dark, core_contrast=0.1)
    assert relative[0] > 1.2 * plain[0]  # more of the drawn cracks labelled on dark paint
    assert relative[1] <= plain[1] + 0.01 * relative[0]  # and only where they change the paint
    assert labels(light, core_contrast=0.1)[0] == labels(light)[0]  # lighter paint keeps the absolute rule
    with pytest.raises(ValueError, match="core_contrast must be in"):
        DamageConfig(core_contrast=-0.1)


def test_loss_size_of_gives_a_tile_a_whole_paintings_large_losses(shapes_root: Path) -> None:
    from lab.synthesis.losses import loss_coverage

    def largest_losses(size_of: int) -> list[int]:
        sizes = []
        for seed in range(12):
            cover = loss_coverage((256, 256), np.random.default_rng(seed), 0.5, size_of=size_of) >= 0.5
            n, _, stats, _ = cv2.connectedComponentsWithStats(cover.astype(np.uint8), connectivity=8)
            sizes.append(int(stats[1:, cv2.CC_STAT_AREA].max()) if n > 1 else 0)
        return sizes

    own, painting = largest_losses(0), largest_losses(1024)
    assert largest_losses(256) == own  # 0 means the image's own shorter side
    assert max(own) < 0.2 * 256 * 256 <= max(painting)
    assert sum(painting) > 1.5 * sum(own)
    image = _painting(256, 256)
    cfg = _cfg(shapes_root, p_paint_loss=1.0, loss_size_of=1024)
    assert realistic_damage(image, 3, cfg).labels.tolist() == realistic_damage(image, 3, cfg).labels.tolist()
    with pytest.raises(ValueError, match="loss_size_of must be >= 0"):
        DamageConfig(loss_size_of=-1)


def test_grounds_limit_what_losses_and_light_cracks_expose(shapes_root: Path, monkeypatch) -> None:
    from lab.synthesis import grounds

    drawn: list[str] = []
    real_ground = grounds.ground

    def spy(kind: str, *args, **kw):
        drawn.append(kind)
        return real_ground(kind, *args, **kw)

    monkeypatch.setattr(grounds, "ground", spy)
    image = _painting(96, 96)
    for seed in range(40):
        realistic_damage(image, seed, _cfg(shapes_root, p_faint_cracks=0.0))
    assert "plaster" in drawn  # every ground by default
    drawn.clear()
    held_out = _cfg(shapes_root, p_faint_cracks=0.0, grounds=("gesso", "bole", "canvas"))
    for seed in range(40):
        realistic_damage(image, seed, held_out)
    assert drawn and "plaster" not in drawn
    drawn.clear()
    realistic_damage(image, 0, held_out, ground="plaster")  # a fixed ground (the held-out set) still draws it
    assert "plaster" in drawn
    with pytest.raises(ValueError, match="grounds must be distinct names"):
        DamageConfig(grounds=("gesso", "marble"))


def test_ground_weights_set_how_often_each_ground_is_drawn() -> None:
    from collections import Counter

    from lab.detector_config import damage_overrides
    from lab.synthesis.realistic import _ground_kind

    def draws(cfg: DamageConfig) -> Counter:
        rng = np.random.default_rng(0)
        return Counter(_ground_kind(rng, cfg) for _ in range(2000))

    assert set(draws(DamageConfig(style="realistic"))) == {"gesso", "bole", "plaster", "canvas"}
    weights = damage_overrides(ground_weights="canvas=3,bole=1")["ground_weights"]
    assert weights == [0.0, 1.0, 0.0, 3.0]  # gesso, bole, plaster, canvas
    mixed = draws(DamageConfig(style="realistic", ground_weights=weights))
    assert set(mixed) == {"bole", "canvas"} and 0.7 < mixed["canvas"] / 2000 < 0.8
    assert set(draws(DamageConfig(style="realistic", ground_weights=weights, grounds=("gesso", "bole")))) == {"bole"}
    for bad in ((1.0, 1.0), (1.0, -1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0)):
        with pytest.raises(ValueError, match="ground_weights must be 4 weights"):
            DamageConfig(ground_weights=bad)
    with pytest.raises(ValueError, match="ground_weights must be 4 weights"):  # no allowed ground left
        DamageConfig(grounds=("gesso",), ground_weights=(0.0, 1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="ground weights must be NAME=W"):
        damage_overrides(ground_weights="marble=1")


def test_real_cracks_are_thin_redrawn_lines(shapes_root: Path) -> None:
    sources = crack_shapes.shape_sources(shapes_root)
    alpha = crack_shapes.real_crack_network((200, 200), np.random.default_rng(0), sources, (1.0, 2.0)).alpha
    cracks = alpha >= 0.5
    assert cracks.mean() > 0.01
    assert cv2.erode(cracks.astype(np.uint8), np.ones((3, 3), np.uint8)).sum() < 0.05 * cracks.sum()  # <= 2 px


def test_crackforest_keeps_its_test_quarter_out() -> None:
    masks = [Path(f"{i:03d}.png") for i in range(1, 13)]
    train = [p.name for p in crack_shapes.crackforest_train(masks[::-1])]  # order of listing does not matter
    assert train == [n for i, n in enumerate(sorted(p.name for p in masks)) if i % 4 != 3]
    assert "004.png" not in train and "001.png" in train and len(train) == 9


def test_classic_style_stays_the_default() -> None:
    assert DamageConfig().style == "classic"
    with pytest.raises(ValueError, match="style"):
        DamageConfig(style="cartoon")


def test_the_shared_real_crack_sets_give_training_shapes_only() -> None:
    root = crack_shapes.default_root()
    if not (root / "nga_craquelure_maps" / "index.csv").is_file():
        pytest.skip("../shared/data (real crack maps) is not present")
    sources = crack_shapes.shape_sources(root)
    names = {p.parent.parent.name + "/" + p.name for p in sources}
    assert any(p.parent.name == "maps" for p in sources)  # NGA craquelure maps
    assert all("test" not in p.parts for p in sources)  # DeepCrack's test split stays held out
    cfd = sorted(p.name for p in (root / "crackforest_cfd" / "masks").glob("*.png"))
    held_out = {n for i, n in enumerate(cfd) if i % 4 == 3}
    assert held_out and not held_out & {n.split("/", 1)[1] for n in names if n.startswith("crackforest_cfd/")}


def test_a_megapixel_image_is_damaged_quickly(shapes_root: Path) -> None:
    image = np.full((1024, 1024, 3), 128, np.uint8)
    start = time.process_time()  # CPU time: robust to other jobs on a shared machine
    realistic_damage(image, 1, _cfg(shapes_root))
    assert time.process_time() - start < 4.0  # under 1 s on one core
