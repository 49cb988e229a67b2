"""Regenerate the demo faces in this folder from the crowd_lr and cnn_facepoint data sets.

Usage::

    python assets/demo/make_demo_assets.py --data PATH

where PATH contains ``crowd_lr/`` and ``cnn_facepoint/`` (default: ``$ALRF_SHARED_DATA``, else
the ``shared/data`` folder beside the repository). The output replaces ``faces/``,
``faces.csv`` and ``landmarks.csv`` next to this script. The same data and seed give the same
files, byte for byte.

What it writes:

- ``faces/<identity>/<identity>_0.png``: real tiny faces from crowd_lr, copied byte for byte.
  Only crops whose width and height are both at most 32 px are eligible. The faces are drawn
  round-robin over the source photos in a seeded order, so every photo contributes.
- ``faces/<identity>/<identity>_0.jpg``: faces made from the cnn_facepoint test split with
  :func:`s2ld_core.lowres.make_lowres_face` (square crop around the face box, area
  downscaling to a random side of 15 to 32 px) and stored as JPEG at quality 50. Faces whose
  landmarks would fall outside the crop are skipped.
- ``landmarks.csv``: the known landmarks of the cnn_facepoint faces in the label CSV format
  (0-based, crop pixels, annotator ``cnn_facepoint``).
- ``faces.csv``: one row per face with its identity, set, source file and size.

Every face is its own identity, because each crop shows a different person as far as is
known, and TinyFace identities are people. Identity names carry the set: ``crowd_<photo>_<k>``
and ``cfp_<photo>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from s2ld_core import formats  # noqa: E402
from s2ld_core.imageio import read_image  # noqa: E402
from s2ld_core.lowres import make_lowres_face  # noqa: E402
from s2ld_core.schema import N_POINTS, PointState  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 7
N_CROWD = 200
N_CNN = 100
MAX_CROWD_SIDE = 32
CNN_SIZES = (15, 32)
JPEG_QUALITY = 50
KNOWN_ANNOTATOR = "cnn_facepoint"


def default_data_dir() -> Path:
    override = os.environ.get("ALRF_SHARED_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data"


def pick_crowd_faces(crowd: Path, rng: np.random.Generator) -> pd.DataFrame:
    """Draw N_CROWD eligible crops, one photo after another in a seeded order."""
    table = pd.read_csv(crowd / "faces.csv")
    eligible = table[(table.crop_w <= MAX_CROWD_SIDE) & (table.crop_h <= MAX_CROWD_SIDE)]
    queues = {}
    for photo, rows in sorted(eligible.groupby("photo_path")):
        order = rng.permutation(len(rows))
        queues[photo] = list(rows.index[order])
    photos = list(queues)
    photos = [photos[i] for i in rng.permutation(len(photos))]

    chosen: list[int] = []
    while len(chosen) < N_CROWD and any(queues.values()):
        for photo in photos:
            if queues[photo] and len(chosen) < N_CROWD:
                chosen.append(queues[photo].pop(0))
    return eligible.loc[chosen]


def write_crowd_faces(crowd: Path, picked: pd.DataFrame, faces_dir: Path) -> list[dict]:
    rows = []
    for face in picked.itertuples():
        stem = Path(face.face_path).stem
        identity = f"crowd_{stem}"
        target = faces_dir / identity / f"{identity}_0.png"
        target.parent.mkdir(parents=True)
        shutil.copyfile(crowd / face.face_path, target)
        rows.append(
            {
                "image": target.relative_to(HERE).as_posix(),
                "identity": identity,
                "set": "crowd_lr",
                "source": face.face_path,
                "width": int(face.crop_w),
                "height": int(face.crop_h),
            }
        )
    return rows


def write_cnn_faces(cnn: Path, rng: np.random.Generator, faces_dir: Path) -> tuple[list[dict], list[formats.LabelRecord]]:
    """Make N_CNN low-resolution test faces with their landmarks mapped into the crop."""
    table = pd.read_csv(cnn / "landmarks.csv")
    test = table[table.split == "test"].sort_values("image_path").reset_index(drop=True)
    order = rng.permutation(len(test))

    rows, records = [], []
    for index in order:
        if len(rows) == N_CNN:
            break
        face = test.iloc[index]
        size = int(rng.integers(CNN_SIZES[0], CNN_SIZES[1] + 1))
        points = np.array([[face[f"x{k + 1}"], face[f"y{k + 1}"]] for k in range(N_POINTS)], dtype=np.float64)
        bbox = (face.bbox_x1, face.bbox_y1, face.bbox_x2, face.bbox_y2)
        crop, xy = make_lowres_face(read_image(cnn / face.image_path), bbox, points, size, jpeg_quality=None)
        if not np.all((xy >= -0.5) & (xy <= size - 0.5)):
            continue

        identity = f"cfp_{Path(face.image_path).stem}"
        target = faces_dir / identity / f"{identity}_0.jpg"
        target.parent.mkdir(parents=True)
        # The JPEG bytes are the degradation itself: decoding them gives the pixels the points belong to.
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {face.image_path}")
        target.write_bytes(data.tobytes())

        image = target.relative_to(HERE).as_posix()
        rows.append({"image": image, "identity": identity, "set": "cnn_facepoint", "source": face.image_path, "width": size, "height": size})
        state = np.full(N_POINTS, PointState.VISIBLE, dtype=np.int8)
        record = formats.records_from_arrays([image], xy[None], state[None], annotator=KNOWN_ANNOTATOR)[0]
        record.extra["source_image"] = face.image_path
        records.append(record)
    if len(rows) < N_CNN:
        raise RuntimeError(f"only {len(rows)} cnn_facepoint test faces fit their crop; expected {N_CNN}")
    return rows, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="folder that contains crowd_lr/ and cnn_facepoint/")
    args = parser.parse_args(argv)
    crowd, cnn = args.data / "crowd_lr", args.data / "cnn_facepoint"
    for required in (crowd / "faces.csv", cnn / "landmarks.csv"):
        if not required.is_file():
            parser.error(f"{required} not found; pass --data with the folder that contains crowd_lr/ and cnn_facepoint/")

    faces_dir = HERE / "faces"
    if faces_dir.exists():
        shutil.rmtree(faces_dir)
    faces_dir.mkdir()
    rng = np.random.default_rng(SEED)
    rows = write_crowd_faces(crowd, pick_crowd_faces(crowd, rng), faces_dir)
    cnn_rows, records = write_cnn_faces(cnn, rng, faces_dir)
    rows += cnn_rows

    pd.DataFrame(rows).sort_values("image").to_csv(HERE / "faces.csv", index=False, lineterminator="\n")
    formats.write_labels_csv(
        HERE / "landmarks.csv",
        records,
        header_lines=[
            "known landmarks of the cnn_facepoint demo faces, 0-based, centre of pixel (i, j) is (i, j)",
            "made by assets/demo/make_demo_assets.py from the cnn_facepoint test split",
        ],
        decimals=3,
    )
    total = sum(f.stat().st_size for f in faces_dir.rglob("*") if f.is_file())
    print(f"wrote {len(rows) - len(records)} crowd_lr and {len(records)} cnn_facepoint faces ({total / 1024:.0f} KiB) to {faces_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
