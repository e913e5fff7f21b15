"""Write a manifest for a dataset in the layout it ships in (PMEmo2019, HKU956, E4 sessions).

Each builder documents the layout it assumes, scans the folder, and writes a manifest CSV
(see `wavenet_lib.data.manifest`). Nothing is downloaded; get the datasets from their publishers.

Nothing is left out silently: every song, session or file a builder cannot use (missing audio,
missing EDA, an unreadable header, two audio files in one session) is a `LeftOut` with the
reason. With `on_bad_recording="error"` the first one is a `DataError` (saying how many more
there are); with "skip" they are written next to the manifest (`left_out_path`, read back by
`read_left_out`) and listed in one `SkippedRecordingsWarning` (unless `warn=False`, when the
caller reports them together with its own skips, as `build_datasets` does).

One module per dataset (`pmemo2019.py`, `hku956.py`, `e4_sessions.py`) and what they share
(`builder_common.py`); this module gathers them.
"""

from __future__ import annotations

from wavenet_lib.data.builder_common import LeftOut, left_out_path, read_left_out
from wavenet_lib.data.e4_sessions import build_e4_manifest
from wavenet_lib.data.hku956 import build_hku956_manifest
from wavenet_lib.data.pmemo2019 import build_pmemo2019_manifest

__all__ = [
    "LeftOut",
    "build_pmemo2019_manifest",
    "build_hku956_manifest",
    "build_e4_manifest",
    "left_out_path",
    "read_left_out",
]
