"""G2, the residual UNet heatmap network of S2LD (Kumar and Chellappa).

The encoder has four layers of two residual blocks each, with a stride-2 convolution
between layers, followed by two dilated 3x3 convolutions. The decoder mirrors it: four
layers of two residual blocks, nearest-neighbour upsampling with a 1x1 convolution
between layers, and each encoder layer's output added (not concatenated) to the decoder
input at the same resolution. A 1x1 head gives one heatmap per landmark plus, when
``background`` is set, one background channel last. The heatmaps have the input's
spatial size, so heatmap pixel (i, j) is input pixel (i, j).

``forward`` returns heatmaps only; :mod:`s2ld_core.heatmaps` decodes them to points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]

#: Norm layers selectable by name in a :class:`G2Config` (the name is what a card stores).
NORM_LAYERS: dict[str, NormFactory] = {
    "batch": nn.BatchNorm2d,
    "instance": lambda c: nn.InstanceNorm2d(c, affine=True),
    "group": lambda c: nn.GroupNorm(min(8, c), c),
    "none": lambda c: nn.Identity(),
}


@dataclass
class G2Config:
    """Shape of a G2 network.

    Attributes:
        n_landmarks: heatmap channels for points (5 for MTCNN order, 19 for AFLW).
        widths: channels of the four encoder and decoder layers, finest resolution first.
        input_size: side of the square input in pixels; must be divisible by 8.
        background: add a background channel after the landmark channels.
        norm: key of :data:`NORM_LAYERS`.
        dilations: dilation rates of the two convolutions after the encoder.
    """

    n_landmarks: int = 5
    widths: tuple[int, int, int, int] = (16, 32, 64, 96)
    input_size: int = 32
    background: bool = True
    norm: str = "batch"
    dilations: tuple[int, int] = (2, 2)

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.dilations = tuple(int(d) for d in self.dilations)
        if len(self.widths) != 4:
            raise ValueError(f"G2 needs 4 layer widths, got {self.widths}")
        if self.input_size % 8 != 0:
            raise ValueError(f"input_size {self.input_size} must be divisible by 8 (three downsamplings)")
        if self.norm not in NORM_LAYERS:
            raise ValueError(f"unknown norm {self.norm!r}; use one of {sorted(NORM_LAYERS)}")

    @property
    def out_channels(self) -> int:
        return self.n_landmarks + (1 if self.background else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def parse_widths(text: str) -> tuple[int, int, int, int]:
        """Parse four comma-separated layer widths such as "16,32,64,96"."""
        try:
            widths = tuple(int(w) for w in text.split(","))
        except ValueError:
            widths = ()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"invalid widths {text!r}; expected four positive integers such as 16,32,64,96")
        return widths

    @classmethod
    def from_dict(cls, data: dict) -> "G2Config":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with norm and ReLU, plus an identity (or 1x1) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormFactory, dilation: int = 1) -> None:
        super().__init__()
        pad = dilation
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=pad, dilation=dilation, bias=False)
        self.norm1 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=pad, dilation=dilation, bias=False)
        self.norm2 = norm(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(y + self.shortcut(x))


def _conv_norm_act(in_channels: int, out_channels: int, norm: NormFactory, **conv_kwargs) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
    return nn.Sequential(conv, norm(out_channels), nn.ReLU(inplace=True))


class G2(nn.Module):
    """Residual UNet mapping (N, 3, S, S) images to (N, C, S, S) heatmaps.

    C is ``n_landmarks`` plus one background channel when ``config.background`` is set.
    Input is float RGB normalised as in :func:`normalise_input`.
    """

    def __init__(self, config: G2Config | None = None, norm_layer: NormFactory | None = None) -> None:
        super().__init__()
        self.config = config or G2Config()
        norm = norm_layer or NORM_LAYERS[self.config.norm]
        w = self.config.widths

        self.stem = _conv_norm_act(3, w[0], norm, kernel_size=3, padding=1)
        self.encoder = nn.ModuleList()
        self.down = nn.ModuleList()
        for k in range(4):
            self.encoder.append(nn.Sequential(ResidualBlock(w[k], w[k], norm), ResidualBlock(w[k], w[k], norm)))
            if k < 3:
                self.down.append(_conv_norm_act(w[k], w[k + 1], norm, kernel_size=3, stride=2, padding=1))

        d1, d2 = self.config.dilations
        self.bottleneck = nn.Sequential(
            _conv_norm_act(w[3], w[3], norm, kernel_size=3, padding=d1, dilation=d1),
            _conv_norm_act(w[3], w[3], norm, kernel_size=3, padding=d2, dilation=d2),
        )

        self.decoder = nn.ModuleList()
        self.up = nn.ModuleList()
        for k in reversed(range(4)):
            self.decoder.append(nn.Sequential(ResidualBlock(w[k], w[k], norm), ResidualBlock(w[k], w[k], norm)))
            if k > 0:
                self.up.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv_norm_act(w[k], w[k - 1], norm, kernel_size=1))
                )
        self.head = nn.Conv2d(w[0], self.config.out_channels, 1)
        # Start near the mean target: landmark maps near 0 and the background map near 1.
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        if self.config.background:
            with torch.no_grad():
                self.head.bias[-1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for k in range(4):
            x = self.encoder[k](x)
            skips.append(x)
            if k < 3:
                x = self.down[k](x)

        x = self.bottleneck(x)
        for i in range(4):
            level = 3 - i
            x = self.decoder[i](x + skips[level])
            if level > 0:
                x = self.up[i](x)
        return self.head(x)


def normalise_input(images: torch.Tensor) -> torch.Tensor:
    """Map uint8-range RGB tensors (N, 3, H, W) to roughly zero mean, unit spread."""
    return (images.float() - 127.5) / 64.0


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fuse_batchnorm(model: G2) -> G2:
    """Fold every BatchNorm2d that follows a convolution into that convolution, in place.

    Only valid in eval mode; used by the predictor for speed. Returns ``model``.
    """

    def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
        fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
        return fused

    for module in model.modules():
        if isinstance(module, ResidualBlock):
            if isinstance(module.norm1, nn.BatchNorm2d):
                module.conv1 = fold(module.conv1, module.norm1)
                module.norm1 = nn.Identity()
            if isinstance(module.norm2, nn.BatchNorm2d):
                module.conv2 = fold(module.conv2, module.norm2)
                module.norm2 = nn.Identity()
        if isinstance(module, nn.Sequential):
            children = list(module.children())
            for i in range(len(children) - 1):
                if isinstance(children[i], nn.Conv2d) and isinstance(children[i + 1], nn.BatchNorm2d):
                    module[i] = fold(children[i], children[i + 1])
                    module[i + 1] = nn.Identity()
    return model
