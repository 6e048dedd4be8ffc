"""Retouch networks, losses, quantization, the weights manifest and the shipped weights: pure torch.

Importing this package first makes torchvision importable next to the CPU build of torch (see
`models.torchvision_compat`), so every module that needs segmentation-models-pytorch imports `models` first.
"""

from models.torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()
