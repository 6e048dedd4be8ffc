"""How a painting is photographed, applied to the WHOLE image (damaged or not) so that colour casts, uneven
light, glare, blur, noise and JPEG artefacts never mean "damage" to a detector.

Drawn once (`draw_photography`), applied identically to the clean and the damaged image: `optics` (varnish
yellowing, uneven light, glare, lens blur; deterministic) then `sensor` (noise with the same realisation, JPEG
for 8-bit output). Labels are measured after `optics`, so blur-spread damage edges are labelled too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lab.synthesis.grounds import smooth_noise


@dataclass(frozen=True)
class Photography:
    """One draw of the photographic conditions for an (H, W) image."""

    varnish: np.ndarray  # (3,) multiplicative tint: yellowed varnish absorbs blue
    light: np.ndarray  # (H, W) gain: uneven illumination
    glare: np.ndarray  # (H, W) in [0, 1]: lifts towards white (a reflection on varnish)
    blur: float  # Gaussian sigma, px (0: none)
    noise: np.ndarray  # (H, W, 3) unit normal, one realisation for clean and damaged alike
    noise_sigma: tuple[float, float]  # read noise, shot-noise factor
    jpeg_quality: int  # 0: no JPEG


def draw_photography(shape: tuple[int, int], rng: np.random.Generator) -> Photography:
    """Random, plausible conditions: mild on average, sometimes strong."""
    h, w = shape
    y = float(rng.uniform(0, 1)) ** 1.5  # varnish yellowing, mostly mild
    varnish = np.array([1.0 - 0.02 * y, 1.0 - 0.1 * y, 1.0 - 0.35 * y], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - w / 2) * np.cos(ang) + (yy - h / 2) * np.sin(ang)) / max(h, w)
    light = 1.0 + float(rng.uniform(0, 0.25)) * ramp + smooth_noise(shape, max(h, w) / 2, rng) * 0.04
    glare = np.zeros(shape, np.float32)
    if rng.random() < 0.3:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s = float(rng.uniform(0.05, 0.3)) * max(h, w)
        glare = float(rng.uniform(0.05, 0.3)) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    blur = float(rng.uniform(0.3, 1.1)) if rng.random() < 0.6 else 0.0
    noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
    sigma = (float(rng.uniform(0.002, 0.012)), float(rng.uniform(0.0, 0.02)))
    quality = int(rng.integers(70, 96)) if rng.random() < 0.7 else 0
    return Photography(varnish, light.astype(np.float32), glare.astype(np.float32), blur, noise, sigma, quality)


def optics(rgb: np.ndarray, photo: Photography) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] seen through the varnish, under the light, with glare and lens blur."""
    out = rgb * photo.varnish[None, None, :] * photo.light[..., None]
    out = out + photo.glare[..., None] * (1 - out)
    if photo.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), photo.blur)
    return np.clip(out, 0, 1).astype(np.float32)


def sensor(rgb: np.ndarray, reference: np.ndarray, photo: Photography, eight_bit: bool) -> np.ndarray:
    """Sensor noise (its level set by `reference`, the clean image, so that clean and damaged get the very
    same noise) and, for 8-bit output, a JPEG round trip."""
    sigma = photo.noise_sigma[0] + photo.noise_sigma[1] * np.sqrt(reference)
    out = np.clip(rgb + photo.noise * sigma, 0, 1).astype(np.float32)
    if eight_bit and photo.jpeg_quality:
        bgr = np.rint(out[..., ::-1] * 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, photo.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    return out
