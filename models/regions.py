"""Connected regions of a bool mask picked by what they hold: numpy and OpenCV only."""

from __future__ import annotations

import cv2
import numpy as np


def regions_holding(mask: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """The bool (H, W) pixels of the 8-connected regions of the bool `mask` that hold a pixel of the bool `hits`."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[mask & hits])] = True
    keep[0] = False
    return keep[labels]
