"""Int8 G2 for fast CPU prediction: static quantization calibrated on real low-resolution faces.

The network is quantized with torch's FX graph mode (x86 engine, per-channel int8 weights,
uint8 activations). Activation ranges come from a calibration set of network inputs stored
beside the weights as ``calibration.safetensors`` (uint8, N x S x S x 3). Loading it needs no
pickle, and the same inputs give the same int8 network on every machine.

Write the calibration set of a checkpoint (faces of the cnn_facepoint train split)::

    python -m s2ld_core.quantize --data PATH/cnn_facepoint --model assets/models/default

NOTE: FX graph mode quantization is deprecated in torch 2.x in favour of torchao. It works in
torch 2.13, which this package pins; a later torch may remove it.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from s2ld_core.model import G2, normalise_input

log = logging.getLogger(__name__)

#: File of the calibration inputs inside a checkpoint folder.
CALIBRATION_NAME = "calibration.safetensors"

#: Train-split photos, each cut at every calibration size: 100 photos x 3 sizes = 300 inputs.
CALIBRATION_FACES = 100
CALIBRATION_SIZES = (16, 24, 32)


class CalibrationMissingError(FileNotFoundError):
    """A checkpoint folder has no calibration set, so the int8 network cannot be built."""


def save_calibration(folder: str | Path, inputs: np.ndarray) -> Path:
    """Write network inputs (N, S, S, 3) uint8 as the calibration set of a checkpoint folder."""
    inputs = np.ascontiguousarray(inputs, dtype=np.uint8)
    if inputs.ndim != 4 or inputs.shape[3] != 3 or len(inputs) == 0:
        raise ValueError(f"calibration inputs have shape {inputs.shape}; expected N x S x S x 3 with N >= 1")
    path = Path(folder) / CALIBRATION_NAME
    tmp = path.with_name(path.name + ".tmp")
    save_file({"inputs": inputs}, str(tmp))
    # safetensors creates the file readable by its owner only; match the weights beside it.
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def load_calibration(folder: str | Path, size: int) -> np.ndarray:
    """Read the calibration inputs of a checkpoint folder and check them against the input size."""
    path = Path(folder) / CALIBRATION_NAME
    if not path.is_file():
        raise CalibrationMissingError(
            f"{path} not found: int8 prediction needs calibration faces; write them with "
            f"`python -m s2ld_core.quantize --data PATH/cnn_facepoint --model {folder}` or use precision bf16 or fp32"
        )
    inputs = load_file(str(path)).get("inputs")
    if inputs is None or inputs.dtype != np.uint8 or inputs.ndim != 4 or inputs.shape[1:] != (size, size, 3):
        shape = None if inputs is None else inputs.shape
        raise ValueError(f"{path} contains inputs of shape {shape}, which is invalid; expected uint8 N x {size} x {size} x 3. "
                         "Write it again with python -m s2ld_core.quantize")
    return inputs


def quantize_int8(model: G2, calibration: np.ndarray, batch_size: int = 64) -> torch.nn.Module:
    """Return an int8 TorchScript module of ``model`` (eval mode, CPU) calibrated on ``calibration`` inputs.

    The module takes float32 NCHW inputs scaled by :func:`normalise_input` and returns float32
    heatmaps, like the float model. Batch norms are folded into the convolutions first.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    float_model = copy.deepcopy(model).cpu().float().eval()
    batches = [
        normalise_input(torch.from_numpy(calibration[s : s + batch_size]).permute(0, 3, 1, 2)).contiguous()
        for s in range(0, len(calibration), batch_size)
    ]
    with warnings.catch_warnings():
        # torch 2.13 warns that FX graph mode quantization is deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        # The trace turns the calibrated scales and zero points into constants, as intended.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        prepared = prepare_fx(float_model, get_default_qconfig_mapping("x86"), (batches[0],))
        with torch.inference_mode():
            for x in batches:
                prepared(x)
        quantized = convert_fx(prepared)
        with torch.inference_mode():
            graph = torch.jit.freeze(torch.jit.trace(quantized, batches[0]))
    return graph


def main(argv: list[str] | None = None) -> int:
    from s2ld_core.checkpoint import load_checkpoint
    from s2ld_core.inference import stack_inputs
    from s2ld_core.training_data import load_cnn_facepoint_eval

    parser = argparse.ArgumentParser(description="Write the int8 calibration faces of a G2 checkpoint.")
    parser.add_argument("--data", required=True, help="cnn_facepoint folder (landmarks.csv and images/)")
    parser.add_argument("--model", required=True, help="checkpoint folder to write calibration.safetensors into")
    parser.add_argument("--faces", type=int, default=CALIBRATION_FACES,
                        help=f"train-split photos to cut at 16, 24 and 32 px (default: {CALIBRATION_FACES})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    model, card = load_checkpoint(args.model, "cpu")
    size = model.config.input_size
    sets = load_cnn_facepoint_eval(args.data, "train", CALIBRATION_SIZES, 50, args.faces)
    inputs = np.concatenate([stack_inputs(list(faces.images), size) for faces in sets.values()])
    path = save_calibration(args.model, inputs)
    log.info("wrote %d calibration inputs of %s to %s", len(inputs), card.model_id, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
