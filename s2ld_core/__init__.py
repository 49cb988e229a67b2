"""Core of ALRF Studio: landmark schema, project store, formats, consensus, metrics and the G2 network.

Nothing in this package imports Qt, so every operation that the GUI offers can run
headless from the CLI or a test.

Coordinate convention
    Points are floats in the pixels of the stored image, 0-based, and the centre of
    pixel (column i, row j) is (i, j). The top-left pixel therefore spans -0.5..0.5 in x
    and y, and a point inside an image of width W and height H lies within
    [-0.5, W - 0.5] x [-0.5, H - 0.5]. Other conventions (1-based MATLAB lists, COCO's
    pixel-corner origin) are converted only in :mod:`s2ld_core.formats`.

Left and right
    "Left" means image-left: the left eye is the subject's right eye, the one with the
    smaller x in a frontal face. A horizontal flip swaps the pairs in
    :data:`s2ld_core.schema.SWAP_PAIRS`.

Point states
    Each point is visible (with x, y), invisible (written -1 in ALRF files) or not
    labelled yet. Invisible and unlabelled points carry NaN coordinates in arrays and
    never enter a mean, distance, heatmap target or metric as a coordinate.

How the parts fit
    :mod:`schema` defines the five points and the label types. :mod:`store` keeps a
    project in SQLite, and :mod:`imageio` decodes every image that enters it.
    :mod:`formats` reads and writes ALRF, MTCNN, CSV and COCO files, and
    :mod:`project_io` applies them to a project. :mod:`dataset` picks an ALRF-style image
    set from a TinyFace-like tree. :mod:`consensus` merges annotators, :mod:`agreement`
    flags their disagreements and :mod:`report` writes the agreement report.
    The G2 network is :mod:`model`; :mod:`heatmaps` encodes targets and decodes points,
    :mod:`augment` and :mod:`lowres` make low-resolution faces, :mod:`training_data`,
    :mod:`train` and :mod:`checkpoint` train and store it, :mod:`predict` and
    :mod:`inference` run it, and :mod:`metrics`, :mod:`evaluation` and :mod:`baselines`
    measure it. :mod:`assist` pre-labels projects and builds training sets from human
    labels, :mod:`train_worker` trains in a separate process, and :mod:`demo` and
    :mod:`demo_run` build and run the demo project.
"""

__version__ = "0.1.0"
