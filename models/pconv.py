"""Partial convolutions and the partial-convolution U-Net of Liu et al. (2018).

Conventions: images are (B, 3, H, W) floats in [0, 1]; masks are 1 where the pixel is valid (known) and
0 in the hole. A mask is either one channel (B, 1, H, W), meaning "every channel of this pixel", or one
channel per input channel (B, C, H, W) (used in the decoder, where the up-sampled features and the skip
features carry different masks).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.smooth_fill import biharmonic_cg, biharmonic_fill, harmonic_fill

PREFILLS = ("none", "harmonic", "biharmonic", "biharmonic-cg")
_FILLS = {"harmonic": harmonic_fill, "biharmonic": biharmonic_fill, "biharmonic-cg": biharmonic_cg}


class PartialConv2d(nn.Module):
    """Convolution over valid pixels only, re-normalised per window, with the updated mask.

    For a window holding `valid` valid input values out of `window` (= channels of the mask x k x k, padding
    counting as invalid, so image borders are handled like holes):
        out = W^T (X * M) * window / valid + b    where valid > 0
        out = 0                                   where valid == 0   (fully masked window)
        new_mask = 1 where valid > 0, else 0      (one channel)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.kernel_size, self.stride, self.padding, self.eps = kernel_size, stride, padding, eps
        self.register_buffer("ones", torch.ones(1, 1, kernel_size, kernel_size), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, Cin, H, W); mask: (B, 1, H, W) or (B, Cin, H, W), 1 = valid
        if mask.shape[1] not in (1, x.shape[1]) or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not fit input shape {tuple(x.shape)}")
        with torch.no_grad():
            # mask arithmetic in float32 even under autocast (counts up to C*k*k must stay exact)
            m32 = mask.float()
            per_pixel = m32 if m32.shape[1] == 1 else m32.sum(dim=1, keepdim=True)  # (B, 1, H, W) valid count
            window = float(m32.shape[1] * self.kernel_size * self.kernel_size)
            valid = F.conv2d(per_pixel, self.ones, stride=self.stride, padding=self.padding)  # (B, 1, H', W')
            new_mask = (valid > 0.5).float()  # (B, 1, H', W'); counts are integers, so > 0.5 means >= 1
            ratio = window / (valid + self.eps) * new_mask  # (B, 1, H', W'); 0 in fully masked windows
        raw = self.conv(x * mask.to(x.dtype))  # (B, Cout, H', W'), no bias
        out = raw * ratio.to(raw.dtype)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1).to(out.dtype)
        out = out * new_mask.to(out.dtype)  # (B, Cout, H', W'); exactly 0 where nothing was valid
        return out, new_mask


class _EncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, bn: bool) -> None:
        super().__init__()
        self.pconv = PartialConv2d(cin, cout, kernel, stride=2, bias=not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else None

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, m = self.pconv(x, m)  # (B, cout, H/2, W/2), (B, 1, H/2, W/2)
        if self.bn is not None:
            h = self.bn(h)
        return F.relu(h), m


class _DecoderBlock(nn.Module):
    def __init__(self, c_up: int, c_skip: int, cout: int, last: bool) -> None:
        super().__init__()
        self.c_up, self.c_skip = c_up, c_skip
        self.pconv = PartialConv2d(c_up + c_skip, cout, 3, stride=1, bias=last)
        self.bn = None if last else nn.BatchNorm2d(cout)
        self.last = last

    def forward(
        self, h: torch.Tensor, m: torch.Tensor, skip: torch.Tensor, skip_m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, c_up, 2h, 2w)
        m = F.interpolate(m, scale_factor=2.0, mode="nearest")  # (B, 1, 2h, 2w)
        x = torch.cat([h, skip], dim=1)  # (B, c_up + c_skip, 2h, 2w)
        mask = torch.cat(
            [m.expand(-1, self.c_up, -1, -1), skip_m.expand(-1, self.c_skip, -1, -1)], dim=1
        )  # (B, c_up + c_skip, 2h, 2w): each channel carries the mask of the tensor it came from
        out, new_m = self.pconv(x, mask)
        if self.last:
            return out, new_m
        return F.leaky_relu(self.bn(out), 0.2), new_m


def encoder_kernels(depth: int) -> list[int]:
    """Kernel sizes of the encoder as in the paper: 7, 5, 5, then 3 for every further layer."""
    return [7, 5, 5, *([3] * max(0, depth - 3))][:depth]


class PConvUNet(nn.Module):
    """The PConv U-Net: `depth` stride-2 partial-conv encoder layers and a mirrored decoder.

    Widths are base, 2*base, 4*base, ... capped at `max_channels` (the paper: base 64, cap 512, depth 7
    at 256 px / 8 at 512 px). Input (B, in_channels, H, W) in [0, 1] with H and W multiples of 2**depth;
    mask (B, 1, H, W), 1 = valid. Returns the raw prediction (B, in_channels, H, W) on the same scale;
    callers composite it with the known pixels (`composite`).

    `prefill="harmonic"` or `"biharmonic"` (Retouch's variant; "none" is the paper's network): the hole is
    first filled by that function of `models.smooth_fill` (`prefill_iterations`: its `iterations`, None for
    its default); the last decoder layer receives the fill beside the input image as its skip (with a mask
    of ones: every fill value is defined), and the network's output is added to the fill. The encoder and
    every other layer are unchanged. The last layer starts at zero, so an untrained network returns the
    fill, and training learns the correction (texture, edges carried across the hole) that a smooth
    interpolation cannot give.

    `refine=C` > 0 (Retouch's variant) adds a small full-resolution branch: plain convolutions (5x5 then
    3x3, C channels, LeakyReLU) over the masked image, the mask, the fill (with a prefill) and the
    decoder's output, whose last 3x3 layer adds a correction to that output. Every other layer of the
    network works at half resolution or coarser, and its last layer sees only 3x3 pixels, so without the
    branch the fill of a 1-3 px crack cannot use the paint on both sides of it. The branch's last layer
    starts at zero: a network extended from trained weights starts out giving exactly their answer.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        depth: int = 7,
        max_channels: int = 512,
        prefill: str = "none",
        prefill_iterations: int | None = None,
        refine: int = 0,
    ) -> None:
        super().__init__()
        if refine < 0:
            raise ValueError(f"refine must be >= 0, got {refine}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if prefill not in PREFILLS:
            raise ValueError(f"prefill must be one of {', '.join(PREFILLS)}, got {prefill!r}")
        self.in_channels, self.depth = in_channels, depth
        if prefill_iterations is not None and prefill_iterations < 0:
            raise ValueError(f"prefill_iterations must be >= 0, got {prefill_iterations}")
        self.base_channels, self.max_channels, self.prefill = base_channels, max_channels, prefill
        self.prefill_iterations = prefill_iterations
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        kernels = encoder_kernels(depth)
        self.encoder = nn.ModuleList(
            _EncoderBlock(in_channels if i == 0 else widths[i - 1], widths[i], kernels[i], bn=i > 0)
            for i in range(depth)
        )
        decoder = []
        for i in range(depth - 1, -1, -1):  # from the bottleneck up
            c_skip = widths[i - 1] if i else in_channels * (2 if prefill != "none" else 1)
            cout = in_channels if i == 0 else widths[i - 1]
            decoder.append(_DecoderBlock(widths[i], c_skip, cout, last=i == 0))
        self.decoder = nn.ModuleList(decoder)
        if prefill != "none":
            self.zero_last_layer()
        self.refine_channels = refine
        self.refine: nn.Sequential | None = None
        if refine:
            c_in = in_channels * (3 if prefill != "none" else 2) + 1  # image, [fill], decoder output, mask
            self.refine = nn.Sequential(
                nn.Conv2d(c_in, refine, 5, padding=2), nn.LeakyReLU(0.2),
                nn.Conv2d(refine, refine, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(refine, in_channels, 3, padding=1),
            )
            with torch.no_grad():
                self.refine[-1].weight.zero_()
                self.refine[-1].bias.zero_()

    def zero_last_layer(self) -> None:
        """Set the last layer's weights and bias to 0 (with a prefill: the network returns the fill)."""
        last = self.decoder[-1].pconv
        with torch.no_grad():
            last.conv.weight.zero_()
            if last.bias is not None:
                last.bias.zero_()

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (2**depth)."""
        return 2**self.depth

    def arch_args(self) -> dict[str, int | str]:
        args: dict[str, int | str] = {
            "in_channels": self.in_channels,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "max_channels": self.max_channels,
        }
        if self.prefill != "none":
            args["prefill"] = self.prefill
            if self.prefill_iterations is not None:
                args["prefill_iterations"] = self.prefill_iterations
        if self.refine_channels:
            args["refine"] = self.refine_channels
        return args

    def check_size(self, height: int, width: int) -> None:
        k = self.multiple
        if height % k or width % k:
            ph, pw = -(-height // k) * k, -(-width // k) * k
            raise ValueError(
                f"PConvUNet(depth={self.depth}) needs height and width multiples of {k}, got {height}x{width}; "
                f"consider padding your images to shape {ph}x{pw} (pipeline.stages.inpaint pads and crops for you)"
            )

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # image: (B, C, H, W) in [0, 1]; mask: (B, 1, H, W), 1 = valid
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f"expected image (B, {self.in_channels}, H, W), got {tuple(image.shape)}")
        self.check_size(image.shape[-2], image.shape[-1])
        x = image * 2.0 - 1.0  # centred input; the mask zeroes the hole anyway
        skips: list[tuple[torch.Tensor, torch.Tensor]] = [(x, mask)]
        fill = None
        if self.prefill != "none":
            its = {} if self.prefill_iterations is None else {"iterations": self.prefill_iterations}
            fill = _FILLS[self.prefill](image, mask, **its)  # (B, C, H, W), known pixels unchanged
            ones = torch.ones_like(fill)
            skips[0] = (torch.cat([x, fill * 2.0 - 1.0], dim=1),
                        torch.cat([mask.expand_as(fill), ones], dim=1))  # (B, 2C, H, W) each
        h, m = x, mask
        for block in self.encoder:
            h, m = block(h, m)  # level i: (B, widths[i], H/2^(i+1), W/2^(i+1))
            skips.append((h, m))
        skips.pop()  # the bottleneck itself is not a skip
        for block in self.decoder:
            skip, skip_m = skips.pop()
            h, m = block(h, m, skip, skip_m)  # up one level
        if self.refine is not None:
            parts = [x * mask, mask, h] if fill is None else [x * mask, mask, fill * 2.0 - 1.0, h]
            h = h + self.refine(torch.cat(parts, dim=1))
        if fill is not None:
            return fill + h * 0.5  # the correction, on the [0, 1] scale, added to the smooth fill
        return h * 0.5 + 0.5  # (B, C, H, W) on the input's [0, 1] scale

    def freeze_encoder_bn(self) -> None:
        """Phase 2 of the paper: encoder batch norm in eval mode with frozen affine parameters.

        Stays frozen across later `model.train()` calls.
        """
        self._encoder_bn_frozen = True
        for block in self.encoder:
            if block.bn is not None:
                block.bn.eval()
                for p in block.bn.parameters():
                    p.requires_grad_(False)

    def freeze_base(self) -> None:
        """Train the refinement branch only: every other layer keeps its weights and batch-norm statistics."""
        if self.refine is None:
            raise ValueError("freeze_base needs a refinement branch (refine > 0)")
        self._base_frozen = True
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith("refine."))
        self.train(self.training)

    def freeze_encoder(self) -> None:
        """Train the decoder (and refinement branch) only: the encoder keeps its weights and batch-norm statistics."""
        self._encoder_frozen = True
        for name, p in self.named_parameters():
            p.requires_grad_(not name.startswith("encoder."))
        self.train(self.training)

    def train(self, mode: bool = True) -> PConvUNet:
        super().train(mode)
        if mode and getattr(self, "_base_frozen", False):
            self.encoder.eval()
            self.decoder.eval()
        if mode and getattr(self, "_encoder_frozen", False):
            self.encoder.eval()
        if mode and getattr(self, "_encoder_bn_frozen", False):
            for block in self.encoder:
                if block.bn is not None:
                    block.bn.eval()
        return self


def composite(prediction: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from `image`, the prediction in the hole; mask (B, 1, H, W), 1 = valid."""
    return mask * image + (1.0 - mask) * prediction
