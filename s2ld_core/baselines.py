"""Baselines that G2 is compared with: the mean face shape and MTCNN's landmark network (O-Net).

Both take face crops (H x W x 3 uint8 RGB, the whole crop being the face) and return points
(N, 5, 2) in each crop's pixels, like :meth:`s2ld_core.predict.Predictor.predict_arrays`.

The O-Net here is a re-implementation of the layer stack of MTCNN's third stage (Zhang et
al., 2016) that loads the weights shipped in the ``facenet-pytorch`` wheel
(``facenet_pytorch/data/onet.pt``, a plain state dict read with ``weights_only=True``).
Only benchmarks and evaluation use it; install the wheel with
``pip install --no-deps facenet-pytorch``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

ONET_INPUT = 48


class BaselineUnavailableError(RuntimeError):
    """A baseline's weights are not installed."""


class MeanShapePredictor:
    """Predicts the same relative point positions for every face crop.

    The shape is the mean of training points divided by crop width and height, with the
    pixel-centre convention: a relative position r maps to ``(r * W) - 0.5``.
    """

    def __init__(self, relative_shape: np.ndarray) -> None:
        self.relative_shape = np.asarray(relative_shape, dtype=np.float64)

    @classmethod
    def fit(cls, images: list[np.ndarray], xy: np.ndarray) -> "MeanShapePredictor":
        """Fit from crops and their points (N, 5, 2); non-finite points are ignored."""
        sizes = np.array([[im.shape[1], im.shape[0]] for im in images], dtype=np.float64)[:, None, :]
        relative = (np.asarray(xy, dtype=np.float64) + 0.5) / sizes
        return cls(np.nanmean(relative, axis=0))

    @classmethod
    def from_cnn_facepoint(cls, root: str | Path, split: str = "train", margin: float = 1.25) -> "MeanShapePredictor":
        """Fit from the points and boxes in ``landmarks.csv`` of a cnn_facepoint folder (no images read).

        Relative positions are taken in the square crop of ``margin`` x the box side that
        :func:`s2ld_core.lowres.make_lowres_face` cuts, so the shape fits its evaluation sets.
        """
        import pandas as pd

        from s2ld_core.lowres import square_crop_box

        table = pd.read_csv(Path(root) / "landmarks.csv")
        table = table[table["split"] == split]
        relative = []
        for row in table.itertuples(index=False):
            x0, y0, side = square_crop_box((row.bbox_x1, row.bbox_y1, row.bbox_x2, row.bbox_y2), margin)
            xy = np.array([[getattr(row, f"x{k}"), getattr(row, f"y{k}")] for k in range(1, 6)], dtype=np.float64)
            # A photo point x lands at (x - x0 + 0.5) * scale - 0.5 in the crop, see s2ld_core.lowres.
            relative.append((xy - [x0, y0] + 0.5) / side)
        return cls(np.mean(relative, axis=0))

    def predict_arrays(self, images: list[np.ndarray]) -> np.ndarray:
        sizes = np.array([[im.shape[1], im.shape[0]] for im in images], dtype=np.float64)[:, None, :]
        return self.relative_shape[None] * sizes - 0.5


class ONet(nn.Module):
    """MTCNN's output network: 48 x 48 RGB in, (box offsets (4), landmarks (10), face probability (2)) out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(3 * 3 * 128, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = nn.functional.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = nn.functional.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = nn.functional.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        # The weights come from Caffe models trained on transposed images, so the dense layer
        # expects features in (width, height, channel) order.
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def onet_weights_path() -> Path:
    """Return the path of ``onet.pt`` inside the installed facenet-pytorch package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        raise BaselineUnavailableError(
            "the MTCNN baseline needs the O-Net weights from facenet-pytorch; "
            "install them with: pip install --no-deps facenet-pytorch"
        )
    path = Path(spec.origin).parent / "data" / "onet.pt"
    if not path.is_file():
        raise BaselineUnavailableError(f"{path} not found; reinstall with: pip install --no-deps --force-reinstall facenet-pytorch")
    return path


class ONetPredictor:
    """MTCNN landmarks for face crops: the centre ``box_fraction`` of each crop is resized to 48 x 48.

    MTCNN runs O-Net on its own square face box, which is tighter than a crop with margin;
    ``box_fraction`` is the side of that box as a fraction of the crop side (0.8 for crops of
    1.25 x the box side). O-Net returns points as fractions of its box, which map to crop
    pixels with the pixel-centre convention as ``x0 + r * w - 0.5``.
    """

    def __init__(self, box_fraction: float = 1.0, device: str = "cpu", batch_size: int = 64) -> None:
        self.box_fraction = box_fraction
        self.device = torch.device(device)
        self.batch_size = batch_size
        state = torch.load(onet_weights_path(), map_location="cpu", weights_only=True)
        self.model = ONet()
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()

    def _boxes(self, images: list[np.ndarray]) -> np.ndarray:
        """Return (x0, y0, w, h) of the centre box of each crop, in pixel edges."""
        sizes = np.array([[im.shape[1], im.shape[0]] for im in images], dtype=np.float64)
        side = sizes * self.box_fraction
        origin = (sizes - side) / 2.0 - 0.5
        return np.concatenate([origin, side], axis=1)

    def make_inputs(self, images: list[np.ndarray]) -> np.ndarray:
        """Cut and resize the boxes to (N, 48, 48, 3) uint8 (Gaussian pre-filter when shrinking, then bilinear)."""
        boxes = self._boxes(images)
        out = np.empty((len(images), ONET_INPUT, ONET_INPUT, 3), dtype=np.uint8)
        for i, (image, (left, top, w, h)) in enumerate(zip(images, boxes)):
            sx, sy = ONET_INPUT / w, ONET_INPUT / h
            # A crop pixel centre x lands on output pixel centre u = (x - left) * s - 0.5.
            matrix = np.array([[sx, 0.0, -left * sx - 0.5], [0.0, sy, -top * sy - 0.5]])
            if min(sx, sy) < 1.0:
                sigma = 0.5 * np.sqrt(max(1.0 / min(sx, sy) ** 2 - 1.0, 0.0))
                image = cv2.GaussianBlur(image, (0, 0), sigma)
            out[i] = cv2.warpAffine(image, matrix, (ONET_INPUT, ONET_INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out

    @torch.inference_mode()
    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Run O-Net on (N, 48, 48, 3) uint8 inputs; returns relative points (N, 5, 2)."""
        outputs = []
        for start in range(0, len(inputs), self.batch_size):
            chunk = torch.from_numpy(inputs[start : start + self.batch_size]).to(self.device)
            x = (chunk.permute(0, 3, 1, 2).float() - 127.5) / 128.0
            _, points, _ = self.model(x)
            outputs.append(points.cpu().numpy())
        points = np.concatenate(outputs) if outputs else np.zeros((0, 10), np.float32)
        # O-Net lists the five x values, then the five y values.
        return np.stack([points[:, :5], points[:, 5:]], axis=-1).astype(np.float64)

    def predict_arrays(self, images: list[np.ndarray]) -> np.ndarray:
        """Predict points (N, 5, 2) in each crop's pixels."""
        relative = self.run(self.make_inputs(images))
        boxes = self._boxes(images)
        xy = np.empty_like(relative)
        # Relative 0 is the box's left (top) pixel edge. facenet-pytorch 2.6 maps it to the
        # centre of the first pixel instead, which measured 0.5-0.6 crop pixels too far right
        # and down on cnn_facepoint test faces at 24 and 120 px.
        xy[..., 0] = boxes[:, None, 0] + relative[..., 0] * boxes[:, None, 2]
        xy[..., 1] = boxes[:, None, 1] + relative[..., 1] * boxes[:, None, 3]
        return xy
