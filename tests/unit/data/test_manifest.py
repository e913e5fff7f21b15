"""Manifest validation and the PMEmo2019 / HKU956 / E4 manifest builders on tiny fake folders."""

from __future__ import annotations

import numpy as np
import pytest

from wavenet_lib.data.manifest import read_manifest, write_manifest
from wavenet_lib.data.manifest_builders import (
    build_e4_manifest,
    build_hku956_manifest,
    build_pmemo2019_manifest,
)
from wavenet_lib.data.recordings import prepare_recording
from wavenet_lib.errors import DataError, SkippedRecordingsWarning

from .conftest import eda_trace, noise, pair, tiny_experiment, write_manifest_csv, write_wav


def test_reads_relative_paths_and_round_trips(tmp_path):
    path = write_manifest_csv(tmp_path / "m.csv", [pair(tmp_path, "a"), pair(tmp_path, "b", offset_s=-0.5)])
    rows = read_manifest(path)
    assert [r.recording_id for r in rows] == ["a", "b"]
    assert rows[0].audio_path == tmp_path / "a.wav" and rows[1].offset_s == -0.5
    again = read_manifest(write_manifest(rows, tmp_path / "copy.csv"))
    assert again == rows
    assert "a.wav" in (tmp_path / "copy.csv").read_text().splitlines()[1].split(",")


def test_missing_columns_are_a_data_error(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("recording_id,audio_path\nx,x.wav\n")
    with pytest.raises(DataError, match=r"m.csv: manifest lacks columns \['subject_id', 'eda_path'"):
        read_manifest(path)


def test_invalid_row_names_line_and_field(tmp_path):
    path = write_manifest_csv(
        tmp_path / "m.csv", [pair(tmp_path, "a"), pair(tmp_path, "b", eda_format="edf")]
    )
    with pytest.raises(DataError, match="m.csv: line 3: eda_format"):
        read_manifest(path)


def test_duplicate_ids_are_a_data_error(tmp_path):
    path = write_manifest_csv(tmp_path / "m.csv", [pair(tmp_path, "a"), pair(tmp_path, "a")])
    with pytest.raises(DataError, match="duplicated recording_id"):
        read_manifest(path)


def test_missing_files_are_a_data_error_when_loaded(tmp_path, model):
    path = write_manifest_csv(tmp_path / "m.csv", [pair(tmp_path, "a")])
    (tmp_path / "a.csv").unlink()
    cfg = tiny_experiment(tmp_path)
    with pytest.raises(DataError, match="a.csv: EDA file not found"):
        prepare_recording(read_manifest(path)[0], model, cfg.data)


def test_pmemo2019_builder(tmp_path, model):
    root = tmp_path / "PMEmo2019"
    for music_id in ("1", "4"):
        write_wav(root / "chorus" / f"{music_id}.mp3", noise(20.0), format="WAV")  # wav bytes, mp3 name
        t = np.arange(20 * 50) / 50.0
        a, b = eda_trace(20.0, 50.0, seed=1), eda_trace(20.0, 50.0, seed=2)
        lines = ["time,100177,200378"] + [f"{x:.2f},{y:.4f},{z:.4f}" for x, y, z in zip(t, a, b, strict=True)]
        (root / "EDA").mkdir(parents=True, exist_ok=True)
        (root / "EDA" / f"{music_id}_EDA.csv").write_text("\n".join(lines) + "\n")
    write_wav(root / "chorus" / "9.mp3", noise(1.0), format="WAV")  # no EDA: left out
    with pytest.warns(SkippedRecordingsWarning, match=r"9.mp3: no EDA: EDA/9_EDA.csv not found"):
        rows = read_manifest(build_pmemo2019_manifest(root))
    assert sorted(r.recording_id for r in rows) == [
        "pmemo-1-100177",
        "pmemo-1-200378",
        "pmemo-4-100177",
        "pmemo-4-200378",
    ]
    assert {r.subject_id for r in rows} == {"100177", "200378"}
    rec = prepare_recording(rows[0], model, tiny_experiment(tmp_path).data)
    assert rec.n_steps == 80  # 20 s at the model's 4 Hz


def test_hku956_builder(tmp_path, model):
    root = tmp_path / "HKU956"
    for pid in ("hku1904", "hku1905"):
        folder = root / "1. physiological_signals" / pid / "EDA"
        folder.mkdir(parents=True)
        (folder / "1_1087470.csv").write_text("".join(f"{v:.4f}\n" for v in eda_trace(20.0)))
        (folder / "2_555.csv").write_text("0.1\n0.2\n")  # its audio is missing: left out
    write_wav(root / "2. original_song_audio" / "1087470.wav", noise(20.0))
    with pytest.warns(SkippedRecordingsWarning, match="2_555.csv: no audio for song 555") as caught:
        rows = read_manifest(build_hku956_manifest(root, tmp_path / "hku.csv"))
    assert len(caught) == 1 and "left out 2 HKU956 item(s)" in str(caught[0].message)  # both participants
    assert [(r.recording_id, r.subject_id) for r in rows] == [
        ("hku956-hku1904-1_1087470", "hku1904"),
        ("hku956-hku1905-1_1087470", "hku1905"),
    ]
    assert prepare_recording(rows[0], model, tiny_experiment(tmp_path).data).n_steps == 80


def test_e4_builder_uses_header_rate_and_tags_offset(tmp_path, model):
    root = tmp_path / "e4"
    for subject, session, tag in (("s01", "day1", True), ("s02", "day1", False)):
        folder = root / subject / session
        folder.mkdir(parents=True)
        values = eda_trace(22.0 if tag else 20.0)
        (folder / "EDA.csv").write_text("1600000000.0\n4.0\n" + "".join(f"{v:.4f}\n" for v in values))
        if tag:
            (folder / "tags.csv").write_text("1600000002.0\n1600000022.0\n")  # start, end of playback
        write_wav(folder / "stimulus.flac", noise(20.0))
    rows = read_manifest(build_e4_manifest(root))
    assert [(r.recording_id, r.subject_id, r.offset_s, r.play_duration_s) for r in rows] == [
        ("e4-s01-day1", "s01", -2.0, 20.0),
        ("e4-s02-day1", "s02", 0.0, None),
    ]
    rec = prepare_recording(rows[0], model, tiny_experiment(tmp_path).data)
    assert rec.n_steps == 80 and rec.audio_start_s == 0.0


def test_builder_on_empty_folder_is_a_data_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no HKU956 recordings found"):
        build_hku956_manifest(tmp_path / "empty")
