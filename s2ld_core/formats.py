"""Import and export of landmark files: ALRF text, label CSV, landmark tables and COCO keypoints.

Readers return a :class:`ReadResult` with one :class:`LabelRecord` per image (per image and
annotator where the file names annotators), in the package coordinate convention. They parse
the whole file first and raise one :class:`FormatError` listing every invalid value, so a
store can apply the records in one transaction or not at all. Writers replace their output
file atomically and return a :class:`WriteSummary`.

Conversions to other conventions happen only here: 1-based coordinates in ALRF and CSV files
(``one_based=True``) and COCO's pixel-edge origin (:data:`COCO_OFFSET`). The file formats
are described in ``docs/formats.md``.

Submodules: :mod:`formats_common` (record types and checks), :mod:`formats_alrf`,
:mod:`formats_csv` and :mod:`formats_coco`.
"""

from s2ld_core.formats_alrf import LAYOUTS, format_alrf, read_alrf, write_alrf
from s2ld_core.formats_coco import COCO_OFFSET, coco_category, coco_document, read_coco, write_coco
from s2ld_core.formats_common import (
    INVISIBLE_MARKER,
    STATE_BY_NAME,
    STATE_NAMES,
    FormatError,
    FormatProblem,
    LabelRecord,
    ReadResult,
    WriteSummary,
    match_image_paths,
    normalise_image_path,
    records_from_arrays,
)
from s2ld_core.formats_csv import (
    COLUMNS,
    CONSENSUS_ANNOTATOR,
    NUMBERED_COLUMNS,
    annotator_file_name,
    labels_table,
    parse_column_mapping,
    read_labels_csv,
    read_landmarks_csv,
    write_annotator_csvs,
    write_consensus_csv,
    write_labels_csv,
)

__all__ = [
    "COCO_OFFSET",
    "COLUMNS",
    "CONSENSUS_ANNOTATOR",
    "INVISIBLE_MARKER",
    "LAYOUTS",
    "NUMBERED_COLUMNS",
    "STATE_BY_NAME",
    "STATE_NAMES",
    "FormatError",
    "FormatProblem",
    "LabelRecord",
    "ReadResult",
    "WriteSummary",
    "annotator_file_name",
    "coco_category",
    "coco_document",
    "format_alrf",
    "labels_table",
    "match_image_paths",
    "normalise_image_path",
    "parse_column_mapping",
    "read_alrf",
    "read_coco",
    "read_labels_csv",
    "read_landmarks_csv",
    "records_from_arrays",
    "write_alrf",
    "write_annotator_csvs",
    "write_coco",
    "write_consensus_csv",
    "write_labels_csv",
]
