"""Display-only brightness, contrast and gamma, applied through a 256-entry lookup table.

The adjustments change what the annotator sees, never the stored image or any coordinate.
They stay the same from image to image until the user resets them, and persist in QSettings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

_SETTINGS_KEY = "display/adjustments"


@dataclass(frozen=True)
class DisplayAdjustments:
    """Brightness (-1..1, added after contrast), contrast (multiplier around mid-grey) and gamma."""

    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.brightness == 0.0 and self.contrast == 1.0 and self.gamma == 1.0

    def lut(self) -> np.ndarray:
        """Return the uint8 (256,) table mapping stored values to displayed values."""
        x = np.arange(256, dtype=np.float64) / 255.0
        x = np.power(x, 1.0 / self.gamma)
        x = (x - 0.5) * self.contrast + 0.5 + self.brightness
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """Copy a QImage into a C-contiguous (H, W, 3) uint8 RGB array."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    # Copy before the converted image is freed: the buffer is only valid while it lives.
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).copy()
    return np.ascontiguousarray(buf.reshape(h, stride)[:, : w * 3].reshape(h, w, 3))


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """Return a QImage (32-bit RGB, which QPainter scales fastest) that owns a copy of the pixels of (H, W, 3) uint8 ``rgb``."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).convertToFormat(QImage.Format.Format_RGB32)


def apply_adjustments(rgb: np.ndarray, adjustments: DisplayAdjustments, lut: np.ndarray | None = None) -> np.ndarray:
    """Return ``rgb`` with the lookup table applied (the input itself when the table is the identity)."""
    if adjustments.is_identity:
        return rgb
    table = adjustments.lut() if lut is None else lut
    return table[rgb]


class AdjustmentsPanel(QWidget):
    """Three sliders and a reset button; emits :attr:`changed` with the new adjustments."""

    changed = Signal(object)

    # Slider positions are integers; these scales turn them into the adjustment values.
    _BRIGHTNESS_SCALE = 100.0
    _CONTRAST_SCALE = 100.0
    _GAMMA_SCALE = 100.0

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._brightness = self._slider(-60, 60)
        self._contrast = self._slider(25, 400)
        self._gamma = self._slider(25, 400)
        self._labels = [QLabel(), QLabel(), QLabel()]
        reset = QPushButton("Reset")
        reset.setToolTip("Return brightness, contrast and gamma to the stored image's values")
        reset.clicked.connect(self.reset)

        form = QFormLayout()
        for title, slider, label in zip(("Brightness", "Contrast", "Gamma"), (self._brightness, self._contrast, self._gamma), self._labels):
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            label.setMinimumWidth(36)
            row.addWidget(label)
            form.addRow(title, row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(reset, 0, Qt.AlignmentFlag.AlignRight)

        self.set_adjustments(self._load())
        for slider in (self._brightness, self._contrast, self._gamma):
            slider.valueChanged.connect(self._on_slider)

    @staticmethod
    def _slider(low: int, high: int) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(low, high)
        return slider

    def adjustments(self) -> DisplayAdjustments:
        return DisplayAdjustments(
            self._brightness.value() / self._BRIGHTNESS_SCALE,
            self._contrast.value() / self._CONTRAST_SCALE,
            self._gamma.value() / self._GAMMA_SCALE,
        )

    def set_adjustments(self, adj: DisplayAdjustments) -> None:
        for slider, value in zip((self._brightness, self._contrast, self._gamma), (adj.brightness, adj.contrast, adj.gamma)):
            slider.blockSignals(True)
            slider.setValue(round(value * 100))
            slider.blockSignals(False)
        self._on_slider()

    def reset(self) -> None:
        self.set_adjustments(DisplayAdjustments())

    def _on_slider(self) -> None:
        adj = self.adjustments()
        for label, value in zip(self._labels, (adj.brightness, adj.contrast, adj.gamma)):
            label.setText(f"{value:+.2f}" if label is self._labels[0] else f"{value:.2f}")
        QSettings().setValue(_SETTINGS_KEY, [adj.brightness, adj.contrast, adj.gamma])
        self.changed.emit(adj)

    @staticmethod
    def _load() -> DisplayAdjustments:
        value = QSettings().value(_SETTINGS_KEY)
        try:
            b, c, g = (float(v) for v in value)
            return DisplayAdjustments(b, c, g)
        except (TypeError, ValueError):
            return DisplayAdjustments()
