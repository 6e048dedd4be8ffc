"""Re-create the bundled sample with simulated damage from the clean sample (seeded, deterministic).

    python -m lab.make_samples
"""

from __future__ import annotations

from data_catalog.schema import CATALOG_DIR
from lab.synthesis.synthetic_damage import synthesize_damage
from pipeline.io.image_io import read_image, write_png

SAMPLES = CATALOG_DIR / "samples"
CLEAN = SAMPLES / "leyster-self-portrait.jpg"
DAMAGED = SAMPLES / "leyster-self-portrait-simulated-damage.png"
LABELS = SAMPLES / "leyster-self-portrait-simulated-damage-labels.png"
SEED = 1630


def main() -> None:
    damaged, labels = synthesize_damage(read_image(CLEAN), seed=SEED)
    write_png(DAMAGED, damaged)
    write_png(LABELS, labels)
    share = {name: float((labels == value).mean()) for name, value in (("craquelure", 1), ("paint_loss", 2))}
    print(f"{DAMAGED.name}: {damaged.shape}, damage share {share}")


if __name__ == "__main__":
    main()
