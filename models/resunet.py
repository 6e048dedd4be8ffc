"""Res-UNet damage detector: a segmentation-models-pytorch U-Net with a ResNet encoder.

Two output channels (craquelure, paint loss) are independent sigmoid logits, so a pixel can be both.
Input is RGB in [0, 1]; the network normalises it itself, so callers never need the training statistics.

With `refine` > 0 a small full-resolution branch (three 3x3 convolutions of `refine` channels) sees the
input image beside the decoder's last features and adds a correction to the logits. The U-Net has no skip
at full resolution (the ResNet's first features are at half size), so without it the edges of 1-2 px
cracks are placed from half-resolution features. The branch's last layer starts at zero, so a network
extended from trained weights starts out giving exactly their answer. The shipped detector is built without
it (it learns the synthetic cracks' pixel profile and loses recall on real crack photos).

With `relative` the encoder also sees the image's contrast relative to its local mean, (x - m) / (m + EPS)
with m the mean over a RELATIVE_WINDOW-px box, clipped to +-RELATIVE_CLIP: a dark crack on dark paint changes
the paint by as much, relatively, as one on light paint, though by far less in absolute terms. Those channels
enter the first convolution only; `widen_input` starts their weights at zero, so a network extended from
trained RGB weights starts out giving exactly their answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F

import models  # noqa: F401  (torchvision import fix before smp)

ENCODERS = ("resnet18", "resnet34")
DEFAULT_DECODER = (128, 64, 48, 32, 16)
MULTIPLE_OF = 32  # five stride-2 stages
RELATIVE_WINDOW = 15  # px, the box over which the local mean of a relative-contrast channel is taken
RELATIVE_EPS = 0.05  # keeps black paint from dividing by zero
RELATIVE_CLIP = 3.0
FIRST_CONV = "net.encoder.conv1.weight"


class ResUNet(nn.Module):
    """U-Net with a ResNet encoder; `forward` gives (B, classes, H, W) logits."""

    def __init__(
        self,
        encoder_name: str = "resnet18",
        classes: int = 2,
        in_channels: int = 3,
        decoder_channels: Sequence[int] = DEFAULT_DECODER,
        refine: int = 0,
        relative: bool = False,
    ) -> None:
        super().__init__()
        if encoder_name not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder_name!r}; choose one of {', '.join(ENCODERS)}")
        if len(decoder_channels) != 5:
            raise ValueError(f"decoder_channels needs 5 widths (one per stage), got {list(decoder_channels)}")
        self.in_channels = in_channels
        self.relative = bool(relative)
        self.net = smp.Unet(
            encoder_name=encoder_name,
            encoder_weights=None,
            in_channels=in_channels * (2 if relative else 1),
            classes=classes,
            decoder_channels=tuple(int(c) for c in decoder_channels),
        )
        if refine < 0:
            raise ValueError(f"refine must be >= 0, got {refine}")
        self.refine = None
        if refine:
            self.refine = nn.Sequential(
                nn.Conv2d(in_channels + int(decoder_channels[-1]), refine, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(refine, refine, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(refine, classes, 3, padding=1),
            )
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)

    @property
    def encoder(self) -> nn.Module:
        """The ResNet encoder (e.g. a fixed feature network for a perceptual loss)."""
        return self.net.encoder

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a (B, {self.in_channels}, H, W) tensor, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % MULTIPLE_OF or w % MULTIPLE_OF:
            ph = (h + MULTIPLE_OF - 1) // MULTIPLE_OF * MULTIPLE_OF
            pw = (w + MULTIPLE_OF - 1) // MULTIPLE_OF * MULTIPLE_OF
            raise ValueError(
                f"input height and width must be multiples of {MULTIPLE_OF}, got {h}x{w}; "
                f"consider padding your images to shape ({ph}, {pw})"
            )
        return (x - 0.5) / 0.25  # (B, C, H, W) roughly zero-mean, unit-variance

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder feature maps for x (B, C, H, W) in [0, 1]: strides 1, 2, 4, 8, 16, 32."""
        return list(self.net.encoder(self._encoder_input(self._check(x))))

    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised image, and with `relative` its relative contrast beside it (B, 2C, H, W)."""
        if not self.relative:
            return x
        rgb = x * 0.25 + 0.5  # back to [0, 1]
        local = box_mean(rgb, RELATIVE_WINDOW)
        contrast = ((rgb - local) / (local + RELATIVE_EPS)).clamp(-RELATIVE_CLIP, RELATIVE_CLIP)
        return torch.cat([x, contrast], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits (B, classes, H, W) and the decoder's last feature map (B, decoder_channels[-1], H, W)."""
        x = self._check(x)  # (B, 3, H, W)
        feats = self.net.encoder(self._encoder_input(x))  # [(B, C_i, H / 2^i, W / 2^i) for i in 0..5]
        dec = self.net.decoder(feats)  # (B, decoder_channels[-1], H, W)
        logits = self.net.segmentation_head(dec)  # (B, classes, H, W)
        if self.refine is not None:
            logits = logits + self.refine(torch.cat([x, dec], dim=1))
        return logits, dec

    @property
    def feature_channels(self) -> int:
        """Channels of `forward_features`' feature map."""
        return int(self.net.segmentation_head[0].in_channels)


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """The mean of x (B, C, H, W) over a `window` x `window` box around each pixel, the border replicated; taken as a
    row pass then a column pass (the same mean as one 2-D pooling, at a fraction of its cost on the CPU)."""
    padded = F.pad(x.contiguous(), [window // 2] * 4, mode="replicate")
    return F.avg_pool2d(F.avg_pool2d(padded, (1, window), stride=1), (window, 1), stride=1)


def widen_input(own: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`theirs` with an RGB network's first convolution widened to `own`'s relative-contrast input: the extra
    input channels' weights are zero, so the widened network gives the RGB one's answer. Other tensors as given."""
    mine, rgb = own.get(FIRST_CONV), theirs.get(FIRST_CONV)
    if mine is None or rgb is None or mine.shape == rgb.shape or mine.shape[1] != 2 * rgb.shape[1]:
        return theirs
    wide = torch.zeros(mine.shape, dtype=rgb.dtype)
    wide[:, : rgb.shape[1]] = rgb
    return {**theirs, FIRST_CONV: wide}
