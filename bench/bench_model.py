"""Speed of G2 landmark prediction beside MTCNN's O-Net, on the same faces, batch 64.

Usage:
    python bench/bench_model.py [--model DIR] [--threads 2] [--faces 2048] [--repeat 5] [--train-batches 20]

Faces are the committed fixture crops (16-32 px) repeated to ``--faces``. Every timing is the
median of ``--repeat`` runs over all faces and counts everything from uint8 crops to points in
crop pixels. Also reported: what channels-last memory, batch-norm fusion and a TorchScript trace
each change, the decoding share of G2's time, and training seconds per epoch on 5,381 faces
(estimated from ``--train-batches`` batches of the default preset).
"""

from __future__ import annotations

import argparse
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
from s2ld_core.inference import predict_points, run_heatmaps, stack_inputs  # noqa: E402
from s2ld_core.model import fuse_batchnorm, normalise_input  # noqa: E402
from s2ld_core.predict import DEFAULT_MODEL_DIR  # noqa: E402
from s2ld_core.training_data import Sample, load_points_csv  # noqa: E402

FIXTURE_CSV = REPO / "tests" / "fixtures" / "lowres_faces" / "points.csv"


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_only(model, inputs: np.ndarray, channels_last: bool, batch: int = 64):
    def run():
        with torch.inference_mode():
            for s in range(0, len(inputs), batch):
                x = normalise_input(torch.from_numpy(inputs[s : s + batch]).permute(0, 3, 1, 2))
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
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement; the median is reported (default: 5)")
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
    print(f"faces: {n} fixture crops of 16-32 px, batch 64, median of {args.repeat} runs\n")

    raw, _ = load_checkpoint(args.model)
    fused, _ = load_checkpoint(args.model)
    fuse_batchnorm(fused)
    fused_cl = fused.to(memory_format=torch.channels_last)
    inputs = stack_inputs(images, raw.config.input_size)

    rows = []
    t_resize = median_time(lambda: stack_inputs(images, raw.config.input_size), args.repeat)
    rows.append(("resize crops to 32x32 (OpenCV)", t_resize))
    t_plain = median_time(forward_only(raw, inputs, False), args.repeat)
    rows.append(("G2 forward, plain", t_plain))
    raw_cl, _ = load_checkpoint(args.model)
    raw_cl = raw_cl.to(memory_format=torch.channels_last)
    rows.append(("G2 forward, channels-last", median_time(forward_only(raw_cl, inputs, True), args.repeat)))
    t_fused = median_time(forward_only(fused_cl, inputs, True), args.repeat)
    rows.append(("G2 forward, channels-last + fused batch norm", t_fused))
    with torch.inference_mode():
        example = normalise_input(torch.from_numpy(inputs[:64]).permute(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
        traced = torch.jit.freeze(torch.jit.trace(fused_cl, example))
    rows.append(("G2 forward, + TorchScript trace and freeze", median_time(forward_only(traced, inputs, True), args.repeat)))

    maps = run_heatmaps(fused_cl, inputs, torch.device("cpu"))
    t_decode = median_time(lambda: decode_heatmaps(maps, 5), args.repeat)
    rows.append(("decode heatmaps (arg-max + Newton step)", t_decode))
    cpu = torch.device("cpu")
    t_total = median_time(lambda: predict_points(fused_cl, images, cpu, flip=False), args.repeat)
    rows.append(("**G2 total, no flip** (resize + forward + decode + map back)", t_total))
    t_total_flip = median_time(lambda: predict_points(fused_cl, images, cpu, flip=True), args.repeat)
    rows.append(("G2 total, with test-time flip", t_total_flip))

    onet = ONetPredictor()
    onet_inputs = onet.make_inputs(images)
    rows.append(("O-Net: cut and resize crops to 48x48", median_time(lambda: onet.make_inputs(images), args.repeat)))
    rows.append(("O-Net: forward", median_time(lambda: onet.run(onet_inputs), args.repeat)))
    t_onet = median_time(lambda: onet.predict_arrays(images), args.repeat)
    rows.append(("**MTCNN O-Net total**", t_onet))

    print("| stage | seconds | faces/s |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {rate(seconds)} |")
    print()
    print(f"G2 (no flip) / O-Net speed ratio: {t_onet / t_total:.2f}x; with flip: {t_onet / t_total_flip:.2f}x")
    print(f"decoding share of G2 total (no flip): {100 * t_decode / t_total:.1f}%")

    if args.train_batches:
        from s2ld_core.train import TrainConfig, train

        samples = [Sample(image=fixture.images[i], xy=fixture.xy[i], state=fixture.state[i], high_res=False)
                   for i in range(len(fixture.keys))]
        samples = [samples[i % len(samples)] for i in range(64 * args.train_batches)]
        config = TrainConfig(epochs=1, threads=args.threads, device="cpu", batch_event_every=1)
        times = []
        for event in train(samples, config, val_samples=samples[:2]):
            if event.kind == "batch":
                times.append(event.elapsed_s)
        per_batch = statistics.median(np.diff(times))
        batches = 5381 // 64
        print(f"training: {per_batch:.3f} s per batch of 64 -> about {per_batch * batches:.0f} s per epoch of 5,381 faces "
              "(plus validation of 468 faces)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
