"""The PConv loss (Liu et al. 2018) and the fixed feature networks its perceptual and style terms need.

    L = L_valid + 6 L_hole + 0.05 L_perceptual + 120 (L_style_out + L_style_comp) + 0.1 L_tv

All L1 terms are size-averaged (NVIDIA/partialconv #9). Perceptual and style terms compare features of a
fixed (never trained) network at three pooling stages, like VGG16's pool1..pool3 in the paper.

Feature network. ImageNet VGG16 weights cannot be downloaded here, so:
- `feature_net="vgg16:/path/vgg16.safetensors"` loads a local VGG16 state dict (torchvision's key names,
  `features.*` at least) into torchvision's vgg16 architecture and uses pool1..pool3 (no download ever);
- the default `feature_net="random"` is a fixed, seeded, randomly initialised VGG-style net
  (`RandomFeatures`). Random-weight conv features are known to carry texture/style statistics well
  (Ulyanov et al. 2018 "Deep Image Prior"; He, Wang & Hopcroft 2016 "A powerful generative model using random
  weights for the deep image representation"), the net is deterministic from its seed, so a run is
  reproducible, and it does not couple the inpainter to whatever detector weights exist at the time.
  Its Gram matrices are large, so 120 x style dominates the total and pulls the fill towards texture
  statistics rather than the true pixels: the shipped inpainter is trained with `feature_net="none"` (the
  training default). 'random' stays this module's default for runs that want the paper's full loss; a real
  VGG16 file should be preferred for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blur import gaussian_kernel, separable_blur

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LossWeights:
    valid: float = 1.0
    hole: float = 6.0
    perceptual: float = 0.05
    style: float = 120.0
    tv: float = 0.1
    psnr: float = 0.0  # Retouch's option: weight of minus the composite's PSNR in dB (see InpaintingLoss)


class RandomFeatures(nn.Module):
    """A fixed VGG-style net with seeded random weights: three conv-ReLU(-conv-ReLU)-maxpool stages.

    Widths (32, 64, 128); Kaiming-normal weights from `torch.Generator().manual_seed(seed)`; zero bias.
    Returns the three pooled feature maps (like VGG16 pool1..pool3).
    """

    def __init__(self, seed: int = 0, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        layers: list[nn.Sequential] = []
        cin = 3
        for cout in widths:
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            layers.append(nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2)))
            cin = cout
        self.stages = nn.ModuleList(layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - 0.5) / 0.25  # (B, 3, H, W) roughly centred
        feats = []
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats  # [(B, 32, H/2, W/2), (B, 64, H/4, W/4), (B, 128, H/8, W/8)]


class VGG16Features(nn.Module):
    """torchvision's VGG16 `features` up to pool3, weights from a local safetensors file (no download)."""

    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        from safetensors.torch import load_file
        from torchvision.models.vgg import cfgs, make_layers

        import models  # noqa: F401  (torchvision import fix)

        path = Path(weights_path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: VGG16 weight file not found")
        state = load_file(str(path))
        feats = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        net = make_layers(cfgs["D"][:10], batch_norm=False)  # torchvision's vgg16().features[:17], up to pool3
        missing = [k for k in net.state_dict() if k not in feats]
        if missing:
            raise ValueError(f"{path}: not a torchvision VGG16 state dict (missing features.{missing[0]} ...)")
        net.load_state_dict({k: feats[k] for k in net.state_dict()})
        self.slices = nn.ModuleList([net[:5], net[5:10], net[10:17]])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        feats = []
        for s in self.slices:
            h = s(h)
            feats.append(h)
        return feats


class DetectorFeatures(nn.Module):
    """The encoder of a trained detector (a manifest entry, verified and frozen): its stride 2, 4, 8 features.

    Of an ensemble (models.ensemble.MaxResUNet) the first member's encoder is used. Input sides must be
    multiples of the detector's (32 for the ResUNet).
    """

    def __init__(self, name: str, manifest_path: Path | None = None) -> None:
        super().__init__()
        from models.weights import MANIFEST_PATH, load_model

        detector, _ = load_model(name, manifest_path or MANIFEST_PATH)
        if isinstance(getattr(detector, "members", None), nn.ModuleList):
            detector = detector.members[0]
        if not hasattr(detector, "features"):
            raise ValueError(f"weights {name!r} ({type(detector).__name__}) have no encoder features")
        self.detector = detector
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> DetectorFeatures:
        return super().train(False)  # batch norm keeps the detector's statistics

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.detector.features(x)[1:4]  # [(B, 64, H/2, W/2), (B, 64, H/4, W/4), (B, 128, H/8, W/8)]


FEATURE_NETS = "'random', 'none', 'vgg16:/path/to/vgg16.safetensors' or 'detector:<weights name>'"


def build_feature_net(spec: str, seed: int = 0) -> nn.Module | None:
    """'random' (seeded), 'vgg16:<file.safetensors>', 'detector:<manifest name>' or 'none' (no perceptual/style)."""
    if spec == "none":
        return None
    if spec == "random":
        return RandomFeatures(seed=seed)
    if spec.startswith("vgg16:"):
        return VGG16Features(spec.split(":", 1)[1])
    if spec.startswith("detector:"):
        return DetectorFeatures(spec.split(":", 1)[1])
    raise ValueError(f"unknown feature net {spec!r}; use {FEATURE_NETS}")


def gram(f: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C*H*W as in the paper."""
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def composite_psnr(comp: torch.Tensor, target: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """PSNR in dB of each (B, C, H, W) composite against its target on the [0, 1] scale, as (B,).

    `floor` is added to the mean squared error, so a perfect fill scores 60 dB, not infinity.
    """
    mse = (comp - target).square().mean(dim=(1, 2, 3))
    return -10.0 * torch.log10(mse + floor)


def total_variation(comp: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Size-averaged TV of the composite over the 1-px dilation of the hole region."""
    region = F.max_pool2d(hole, 3, stride=1, padding=1)  # (B, 1, H, W)
    dx = (comp[..., :, 1:] - comp[..., :, :-1]).abs() * (region[..., :, 1:] * region[..., :, :-1])
    dy = (comp[..., 1:, :] - comp[..., :-1, :]).abs() * (region[..., 1:, :] * region[..., :-1, :])
    return dx.mean() + dy.mean()


HOLE_NORMS = ("image", "hole", "lowpass")
LOWPASS_SIGMA = 2.0  # px: hole_norm "lowpass" compares the fill with the truth below this Gaussian's band


class InpaintingLoss(nn.Module):
    """The paper's loss; `forward` returns the total and each term (detached) for logging.

    `hole_norm="image"` is the paper's L_hole (L1 over the hole, averaged over every pixel of the batch), in
    which an image with a 5 % hole weighs a tenth of one with a 50 % hole. `"hole"` averages each image's L1
    over its own hole pixels, then over the batch, so that small holes and thin cracks count as much as
    large holes (Retouch's option; the evaluation scores every hole-ratio bin separately). `"lowpass"` is `"hole"` on
    the composite and the truth blurred by a Gaussian of LOWPASS_SIGMA px: the fill's fine band (its texture) is not
    held to the truth's pixel by pixel, so that an adversarial term alone decides it.
    `weights.psnr` > 0 adds that weight times minus the PSNR (dB) of each composite against its target,
    averaged over the batch: the evaluation's own figure. L1 trains towards the median; this term pulls
    towards the mean, and its gradient grows as an image's error shrinks, so thin cracks and small holes,
    where an L1-trained correction is noise around the smooth fill, are not drowned by large holes.
    """

    def __init__(
        self, feature_net: nn.Module | None, weights: LossWeights = LossWeights(), hole_norm: str = "image"
    ) -> None:
        super().__init__()
        if hole_norm not in HOLE_NORMS:
            raise ValueError(f"hole_norm must be one of {', '.join(HOLE_NORMS)}, got {hole_norm!r}")
        self.features = feature_net
        self.w = weights
        self.hole_norm = hole_norm

    def _hole_l1(self, hole: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        if self.hole_norm == "image":
            return (hole * error).mean()
        per_image = (hole * error).sum((1, 2, 3)) / (hole.sum((1, 2, 3)) * error.shape[1]).clamp_min(1.0)
        return per_image.mean()

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        # pred, target: (B, 3, H, W); mask: (B, 1, H, W), 1 = valid
        hole = 1.0 - mask
        comp = mask * target + hole * pred
        if self.hole_norm == "lowpass":
            k = gaussian_kernel(LOWPASS_SIGMA).to(comp)
            error = separable_blur(comp, k) - separable_blur(target, k)
        else:
            error = pred - target
        terms = {
            "valid": (mask * (pred - target)).abs().mean(),
            "hole": self._hole_l1(hole, error.abs()),
            "tv": total_variation(comp, hole),
        }
        total = self.w.valid * terms["valid"] + self.w.hole * terms["hole"] + self.w.tv * terms["tv"]
        if self.w.psnr:
            terms["psnr"] = composite_psnr(comp, target).mean()
            total = total - self.w.psnr * terms["psnr"]
        if self.features is not None:
            n = pred.shape[0]
            feats = self.features(torch.cat([pred, comp, target], dim=0))
            perc = pred.new_zeros(())
            style_out = pred.new_zeros(())
            style_comp = pred.new_zeros(())
            for f in feats:
                f_out, f_comp, f_gt = f[:n], f[n : 2 * n], f[2 * n :].detach()
                perc = perc + (f_out - f_gt).abs().mean() + (f_comp - f_gt).abs().mean()
                g_gt = gram(f_gt)
                style_out = style_out + (gram(f_out) - g_gt).abs().mean()
                style_comp = style_comp + (gram(f_comp) - g_gt).abs().mean()
            terms.update(perceptual=perc, style_out=style_out, style_comp=style_comp)
            total = total + self.w.perceptual * perc + self.w.style * (style_out + style_comp)
        return total, {k: float(v.detach()) for k, v in terms.items()}
