"""Re-create the bundled sample with simulated damage from the clean sample (seeded, deterministic).

    python -m lab.make_samples

The damage is the realistic style (`lab.synthesis.realistic`): real crack-network shapes, losses exposing
textured grounds, the whole image re-photographed. No hard negatives are painted in: the sample stays the
painter's own picture apart from its damage.
"""

from __future__ import annotations

from data_catalog.schema import CATALOG_DIR
from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage
from pipeline.io.image_io import read_image, write_png

SAMPLES = CATALOG_DIR / "samples"
CLEAN = SAMPLES / "leyster-self-portrait.jpg"
DAMAGED = SAMPLES / "leyster-self-portrait-simulated-damage.png"
LABELS = SAMPLES / "leyster-self-portrait-simulated-damage-labels.png"
SEED = 1630
SAMPLE_DAMAGE = DamageConfig(style="realistic", p_craquelure=1.0, p_paint_loss=1.0, loss_amount=(0.3, 0.5),
                             p_negatives=0.0, p_photography=1.0)


def main() -> None:
    damaged, labels = synthesize_damage(read_image(CLEAN), seed=SEED, config=SAMPLE_DAMAGE)
    write_png(DAMAGED, damaged)
    write_png(LABELS, labels)
    share = {name: float((labels == value).mean()) for name, value in (("craquelure", 1), ("paint_loss", 2))}
    print(f"{DAMAGED.name}: {damaged.shape}, damage share {share}")


if __name__ == "__main__":
    main()
