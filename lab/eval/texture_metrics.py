"""Texture measures of a fill against the truth: what a viewer sees that PSNR does not.

PSNR rewards blur (the mean of the plausible fills is the PSNR-optimal one), so the inpainting evaluation also
reports, per case:

- `gradient_ratio(fill, truth, hole)`: mean gradient magnitude of the fill's luminance inside the hole divided by
  the truth's. 1 = the same texture energy; a blurred fill scores well below 1, an over-sharpened or noisy one
  above 1. Gradients: 3x3 Sobel (`cv2.Sobel`, divided by 8 so a unit step per pixel gives 1) on the whole
  composite, so a visible seam on the hole's border counts too; averaged over the hole pixels only.
- `gmsd(fill, truth, region)`: gradient magnitude similarity deviation (W. Xue, L. Zhang, X. Mou, A. C. Bovik,
  "Gradient Magnitude Similarity Deviation: A Highly Efficient Perceptual Image Quality Index", IEEE Trans.
  Image Processing 23(2), 2014, eqs. 1-4): Prewitt gradient magnitudes m_r, m_d (kernels [1/3, 0, -1/3] x 3
  rows), gradient magnitude similarity GMS = (2 m_r m_d + c) / (m_r^2 + m_d^2 + c), GMSD = the standard
  deviation of GMS (population sd) over the pixels scored. 0 = identical gradients; lower is better.
  The paper's c = 170 is for 8-bit values (0..255); on the [0, 1] scale used here it is 170 / 255^2 = 0.0026144
  (`GMSD_C`, as `piq.gmsd`'s default `t`). Departures from the paper, both for a local measure: the std is
  taken over `region` (the evaluation passes the hole widened by 2 px) instead of the whole image, and there
  is no 2x downsampling first (the paper's step for whole 512 px images would erase 1-2 px cracks).
- `haarpsi(fill, truth)`: HaarPSI (R. Reisenhofer, S. Bosse, G. Kutyniok, T. Wiegand, "A Haar wavelet-based
  perceptual similarity index for image quality assessment", Signal Processing: Image Communication 61, 2018)
  of the whole composite via `piq.haarpsi` (no weights, no download); 1 = identical, higher is better.
  Whole image like PSNR/SSIM, so small holes move it little.

Luminance: Y = 0.299 R + 0.587 G + 0.114 B on [0, 1] (ITU-R BT.601, the Y of YIQ that piq uses).
All functions take (H, W, 3) uint8 RGB (or (H, W) / float in [0, 1]) and an (H, W) bool mask.
"""

from __future__ import annotations

import cv2
import numpy as np

GMSD_C = 170.0 / 255.0**2  # Xue et al. 2014: c = 170 for 0..255 images, so 0.0026144 on [0, 1]
_EPS = 1e-6  # keeps flat/flat at ratio 1
_PREWITT_X = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32) / 3.0


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 BT.601 luma in [0, 1] of an RGB (H, W, 3) or grey (H, W) image (uint8/uint16 or float)."""
    a = image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        a /= float(np.iinfo(image.dtype).max)
    if a.ndim == 3:
        a = a[:, :, :3] @ np.array([0.299, 0.587, 0.114], np.float32) if a.shape[2] >= 3 else a[:, :, 0]
    return np.ascontiguousarray(a, dtype=np.float32)


def sobel_magnitude(y: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a float image: 3x3 Sobel / 8 (a ramp of slope s per px gives s), reflect border."""
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def prewitt_magnitude(y: np.ndarray) -> np.ndarray:
    """Gradient magnitude with the Prewitt kernels of Xue et al. 2014 ([1/3, 0, -1/3] in 3 rows), reflect border."""
    gx = cv2.filter2D(y, cv2.CV_32F, _PREWITT_X, borderType=cv2.BORDER_REFLECT)
    gy = cv2.filter2D(y, cv2.CV_32F, _PREWITT_X.T, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx * gx + gy * gy)


def gradient_ratio(fill: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the fill's luma inside `hole` over the truth's (1 = same texture energy).

    A fill that is as flat as a flat truth scores 1; an empty hole scores 1.
    """
    if not hole.any():
        return 1.0
    g_fill = float(sobel_magnitude(luminance(fill))[hole].mean())
    g_truth = float(sobel_magnitude(luminance(truth))[hole].mean())
    return (g_fill + _EPS) / (g_truth + _EPS)


def gms_map(fill: np.ndarray, truth: np.ndarray, c: float = GMSD_C) -> np.ndarray:
    """Gradient magnitude similarity map (Xue et al. 2014, eq. 3) of the lumas, in (0, 1]; 1 = same gradient."""
    m_d = prewitt_magnitude(luminance(fill))
    m_r = prewitt_magnitude(luminance(truth))
    return (2 * m_r * m_d + c) / (m_r * m_r + m_d * m_d + c)


def gmsd(fill: np.ndarray, truth: np.ndarray, region: np.ndarray, c: float = GMSD_C) -> float:
    """GMSD (Xue et al. 2014, eq. 4): population standard deviation of the GMS map over `region` (0 = identical)."""
    if not region.any():
        return 0.0
    return float(gms_map(fill, truth, c)[region].std())


def haarpsi(fill: np.ndarray, truth: np.ndarray) -> float:
    """HaarPSI of two (H, W, 3) uint8 images via `piq.haarpsi` (whole image; 1 = identical, higher is better)."""
    import torch

    from models.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()  # piq imports torchvision, a CUDA build beside the CPU torch here
    import piq

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255.0

    with torch.inference_mode():
        return float(piq.haarpsi(t(truth), t(fill), data_range=1.0))
