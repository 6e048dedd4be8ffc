"""Re-create the bundled sample with simulated damage from the clean sample (seeded, deterministic).

    python -m lab.make_samples

The damage is the realistic style (`lab.synthesis.realistic`): real crack-network shapes, losses exposing
textured grounds, the whole image re-photographed. No hard negatives are painted in: the sample stays the
painter's own picture apart from its damage.
"""

from __future__ import annotations

import numpy as np

from data_catalog.schema import CATALOG_DIR
from lab.synthesis.realistic import realistic_damage
from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage
from pipeline.errors import InputError
from pipeline.io.image_io import read_image, write_png

SAMPLES = CATALOG_DIR / "samples"
CLEAN = SAMPLES / "leyster-self-portrait.jpg"
DAMAGED = SAMPLES / "leyster-self-portrait-simulated-damage.png"
LABELS = SAMPLES / "leyster-self-portrait-simulated-damage-labels.png"
SEED = 1630
SAMPLE_DAMAGE = DamageConfig(style="realistic", p_craquelure=1.0, p_paint_loss=1.0, loss_amount=(0.3, 0.5),
                             p_negatives=0.0, p_photography=1.0)


def sample_truth() -> tuple[np.ndarray, np.ndarray]:
    """The bundled damaged sample's clean picture photographed alike (the same varnish, light, blur and noise as
    the damaged one, no damage) and its (H, W) labels, made again by the generator; refused unless the generator
    still makes the bundled damaged image and labels exactly."""
    result = realistic_damage(read_image(CLEAN), SEED, SAMPLE_DAMAGE)
    if not np.array_equal(read_image(DAMAGED), result.damaged):
        raise InputError(DAMAGED, "the damage generator no longer makes this image (run `python -m lab.make_samples`)")
    if not np.array_equal(read_image(LABELS)[..., 0], result.labels):
        raise InputError(LABELS, "the damage generator no longer makes these labels (run `python -m lab.make_samples`)")
    return result.clean, result.labels


def main() -> None:
    damaged, labels = synthesize_damage(read_image(CLEAN), seed=SEED, config=SAMPLE_DAMAGE)
    write_png(DAMAGED, damaged)
    write_png(LABELS, labels)
    share = {name: float((labels == value).mean()) for name, value in (("craquelure", 1), ("paint_loss", 2))}
    print(f"{DAMAGED.name}: {damaged.shape}, damage share {share}")


if __name__ == "__main__":
    main()
