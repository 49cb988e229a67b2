"""Speed of G2 landmark prediction beside MTCNN's O-Net, on the same faces, batch 64.

Usage:
    python bench/bench_model.py [--model DIR] [--threads 2] [--faces 2048] [--repeat 5] [--train-batches 20]

Faces are the committed fixture crops (16-32 px) repeated to ``--faces``. Stages run in turn,
``--repeat`` rounds, and the median and best time over all faces are reported; totals count
everything from uint8 crops to points in crop pixels. Also reported: what channels-last
memory, batch-norm fusion, a TorchScript trace, bfloat16 weights and int8 quantization each
change, the decoding share of G2's time, O-Net's forward pass in bfloat16 for reference, and training seconds per
epoch on 5,381 faces in float32 and in bfloat16 autocast (estimated from ``--train-batches``
batches of the default preset).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2ld_core.baselines import ONetPredictor  # noqa: E402
from s2ld_core.checkpoint import load_checkpoint  # noqa: E402
from s2ld_core.heatmaps import decode_heatmaps  # noqa: E402
from s2ld_core.inference import run_heatmaps, stack_inputs  # noqa: E402
from s2ld_core.model import fuse_batchnorm, normalise_input  # noqa: E402
from s2ld_core.predict import DEFAULT_MODEL_DIR, Predictor  # noqa: E402
from s2ld_core.training_data import Sample, load_points_csv  # noqa: E402

NO_FLIP = "**G2 total, no flip** (Predictor default: resize + forward + decode + map back)"
WITH_FLIP = "G2 total, with test-time flip"
INT8 = "**G2 total, no flip, int8** (`--precision int8`)"
ONET_TOTAL = "**MTCNN O-Net total**"
FIXTURE_CSV = REPO / "tests" / "fixtures" / "lowres_faces" / "points.csv"


def forward_only(model, inputs: np.ndarray, channels_last: bool, batch: int = 64, dtype=torch.float32):
    def run():
        with torch.inference_mode():
            for s in range(0, len(inputs), batch):
                x = normalise_input(torch.from_numpy(inputs[s : s + batch]).permute(0, 3, 1, 2)).to(dtype)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                else:
                    x = x.contiguous()
                model(x)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--faces", type=int, default=2048, help="faces per timed run (default: 2048)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds over all stages; the median and best are reported (default: 5)")
    parser.add_argument("--train-batches", type=int, default=20, help="training batches timed for the epoch estimate, 0 to skip (default: 20)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    fixture = load_points_csv(FIXTURE_CSV)
    base = list(fixture.images)
    images = [base[i % len(base)] for i in range(args.faces)]
    n = len(images)

    def rate(seconds: float) -> str:
        return f"{n / seconds:,.0f}"

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, Python {platform.python_version()}")
    print(f"faces: {n} fixture crops of 16-32 px, batch 64, {args.repeat} rounds\n")

    raw, _ = load_checkpoint(args.model)
    fused, _ = load_checkpoint(args.model)
    fuse_batchnorm(fused)
    fused_cl = fused.to(memory_format=torch.channels_last)
    inputs = stack_inputs(images, raw.config.input_size)

    maps = run_heatmaps(fused_cl, inputs, torch.device("cpu"))
    onet = ONetPredictor()
    onet_inputs = onet.make_inputs(images)
    raw_cl, _ = load_checkpoint(args.model)
    raw_cl = raw_cl.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        example = normalise_input(torch.from_numpy(inputs[:64]).permute(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
        traced = torch.jit.freeze(torch.jit.trace(fused_cl, example))
        fused_bf16 = copy.deepcopy(fused_cl).to(torch.bfloat16)
        traced_bf16 = torch.jit.freeze(torch.jit.trace(fused_bf16, example.to(torch.bfloat16)))
    predictor = Predictor(args.model, device="cpu", flip=False)
    predictor_fp32 = Predictor(args.model, device="cpu", flip=False, precision="fp32")
    predictor_flip = Predictor(args.model, device="cpu", flip=True)
    predictor_int8 = Predictor(args.model, device="cpu", flip=False, precision="int8")
    onet_bf16 = copy.deepcopy(onet.model).to(torch.bfloat16)

    def onet_forward_bf16():
        with torch.inference_mode():
            for s in range(0, n, 64):
                chunk = torch.from_numpy(onet_inputs[s : s + 64])
                onet_bf16(((chunk.permute(0, 3, 1, 2).float() - 127.5) / 128.0).to(torch.bfloat16))


    stages = {
        "resize crops to 32x32 (OpenCV)": lambda: stack_inputs(images, raw.config.input_size),
        "G2 forward, plain": forward_only(raw, inputs, False),
        "G2 forward, channels-last": forward_only(raw_cl, inputs, True),
        "G2 forward, channels-last + fused batch norm": forward_only(fused_cl, inputs, True),
        "G2 forward, + TorchScript trace and freeze": forward_only(traced, inputs, True),
        "G2 forward, + bfloat16 weights": forward_only(traced_bf16, inputs, True, dtype=torch.bfloat16),
        "G2 forward, int8 (static quantization, traced)": forward_only(predictor_int8.model, inputs, False),
        "decode heatmaps (arg-max + Newton step)": lambda: decode_heatmaps(maps, 5),
        "G2 total, no flip, float32": lambda: predictor_fp32.predict_arrays(images),
        NO_FLIP: lambda: predictor.predict_arrays(images),
        WITH_FLIP: lambda: predictor_flip.predict_arrays(images),
        INT8: lambda: predictor_int8.predict_arrays(images),
        "O-Net: cut and resize crops to 48x48": lambda: onet.make_inputs(images),
        "O-Net: forward": lambda: onet.run(onet_inputs),
        "O-Net: forward in bfloat16 (reference only, not how MTCNN runs)": onet_forward_bf16,
        ONET_TOTAL: lambda: onet.predict_arrays(images),
    }
    # Round-robin over the stages, so a change in machine load hits every stage alike.
    times = {name: [] for name in stages}
    for fn in stages.values():
        fn()
    for _ in range(args.repeat):
        for name, fn in stages.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rows = [(name, statistics.median(t), min(t)) for name, t in times.items()]
    best = {name: b for name, _, b in rows}
    t_total = best[NO_FLIP]
    t_total_flip = best[WITH_FLIP]
    t_onet = best[ONET_TOTAL]
    t_int8 = best[INT8]
    t_decode = best["decode heatmaps (arg-max + Newton step)"]

    print("| stage | median s | best s | faces/s (best) |")
    print("|---|---|---|---|")
    for name, median, fastest in rows:
        print(f"| {name} | {median:.3f} | {fastest:.3f} | {rate(fastest)} |")
    print()
    print(f"speed ratios from the best runs: G2 (no flip) / O-Net: {t_onet / t_total:.2f}x; with flip: {t_onet / t_total_flip:.2f}x; "
          f"int8, no flip: {t_onet / t_int8:.2f}x")
    print(f"decoding share of G2 total (no flip): {100 * t_decode / t_total:.1f}%; int8: {100 * t_decode / t_int8:.1f}%")
    print(f"Predictor precision on this CPU: {predictor.precision}")

    if args.train_batches:
        from s2ld_core.train import TrainConfig, train

        samples = [Sample(image=fixture.images[i], xy=fixture.xy[i], state=fixture.state[i], high_res=False)
                   for i in range(len(fixture.keys))]
        samples = [samples[i % len(samples)] for i in range(64 * args.train_batches)]
        for train_precision in ("fp32", "bf16"):
            config = TrainConfig(epochs=1, threads=args.threads, device="cpu", batch_event_every=1, precision=train_precision)
            times = []
            for event in train(samples, config, val_samples=samples[:2]):
                if event.kind == "batch":
                    times.append(event.elapsed_s)
            per_batch = statistics.median(np.diff(times))
            batches = 5381 // 64
            print(f"training ({train_precision}): {per_batch:.3f} s per batch of 64 -> about {per_batch * batches:.0f} s "
                  "per epoch of 5,381 faces (plus validation of 468 faces)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
