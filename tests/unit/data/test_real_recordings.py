"""Real recordings in their real formats: cropping to the audio/EDA overlap, EDA sanity limits,
hostile files named by file and row, builders that leave nothing out silently, damaged audio and
feature caches."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf

from wavenet_lib.data.audio import audio_duration, load_audio
from wavenet_lib.data.bundle import build_datasets
from wavenet_lib.data.eda import read_e4_eda, read_generic_eda, read_hku956_eda
from wavenet_lib.data.features import mfcc_for_recording, mfcc_statistics, model_features
from wavenet_lib.data.manifest import read_manifest
from wavenet_lib.data.manifest_builders import (
    build_e4_manifest,
    build_hku956_manifest,
    build_pmemo2019_manifest,
    read_left_out,
)
from wavenet_lib.data.recordings import prepare_recording
from wavenet_lib.errors import DataError, SkippedRecordingsWarning

from .conftest import eda_trace, noise, pair, tiny_experiment, tiny_model, write_manifest_csv, write_wav

MP3_SR = 44100
E4_START = 1600000000.0


def write_mp3(path, seconds: float, seed: int = 0):
    """A 44.1 kHz stereo mp3, as music is distributed."""
    if "MP3" not in sf.available_formats():  # pragma: no cover - libsndfile < 1.1 (soundfile wheels have it)
        pytest.skip("this libsndfile cannot write mp3")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, noise(seconds, sr=MP3_SR, seed=seed, channels=2), MP3_SR, format="MP3")
    return path


def write_e4_eda(path, values, start=E4_START, rate=4.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{start:.6f}\n{rate:.6f}\n" + "".join(f"{v:.6f}\n" for v in values))
    return path


def data_cfg(tmp_path, **data):
    return tiny_experiment(tmp_path, **data).data


def caught_skips(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught if issubclass(w.category, SkippedRecordingsWarning)]


# --- audio: mp3 at 44.1 kHz stereo, truncated files, unreadable files -----------------------------


def test_mp3_44k_stereo_pairs_with_eda(tmp_path):
    write_mp3(tmp_path / "song.mp3", 8.0)
    row = pair(tmp_path, "song", seconds=8.0) | {"audio_path": "song.mp3"}
    cfg = tiny_experiment(tmp_path, source="manifest", path=write_manifest_csv(tmp_path / "m.csv", [row]))
    assert audio_duration(tmp_path / "song.mp3") == pytest.approx(8.0, abs=0.01)
    rec = prepare_recording(read_manifest(cfg.data.path)[0], cfg.model, cfg.data)
    assert rec.n_steps == 32 and rec.mfcc().shape == (1, 320, 8)  # 8 s at 4 Hz, 10 frames per step


def test_truncated_mp3_is_rejected_with_both_lengths(tmp_path):
    full = write_mp3(tmp_path / "full.mp3", 20.0)
    data = full.read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 3])
    assert sf.info(str(tmp_path / "cut.mp3")).duration == pytest.approx(20.0)  # the header still says 20 s
    with pytest.raises(
        DataError, match=r"cut.mp3: audio is truncated: its header says 20.00 s but only [67]\.\d\d s decode"
    ):
        audio_duration(tmp_path / "cut.mp3")


def test_a_truncated_mp3_is_rejected_when_read_for_its_samples_too(tmp_path):
    data = write_mp3(tmp_path / "full.mp3", 20.0).read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"cut.mp3: audio is truncated: its header says 20.00 s"):
        load_audio(tmp_path / "cut.mp3", 16000, 1)


def test_new_audio_is_decoded_once_for_its_length_and_its_features(tmp_path, monkeypatch):
    """`audio_features` on a file this process has not seen: one decode, not one for the length
    and one for the samples; the features equal those of a separate length + feature read."""
    from wavenet_lib.data import audio as audio_module
    from wavenet_lib.data.recordings import audio_features

    cfg = tiny_experiment(tmp_path)
    write_mp3(tmp_path / "a.mp3", 6.0)
    decodes = []
    real_decode = audio_module._decode
    monkeypatch.setattr(audio_module, "_decode", lambda p, keep: decodes.append(keep) or real_decode(p, keep))
    once = audio_features(tmp_path / "a.mp3", cfg, start_s=0.5)
    assert decodes == [True]
    assert audio_duration(tmp_path / "a.mp3") == pytest.approx(6.0, abs=0.01) and decodes == [True]
    n_steps = int((6.0 - 0.5) * cfg.model.eda_sample_rate)
    assert once.shape[1] == n_steps * cfg.model.spectral_frames_per_eda_step
    uncached = mfcc_for_recording(tmp_path / "a.mp3", cfg.model, n_steps, start_s=0.5)  # a decode of its own
    assert decodes == [True, True]
    expected = model_features(
        uncached, *mfcc_statistics(uncached), cfg.model, standardize=cfg.data.mfcc_standardize != "none"
    )
    np.testing.assert_array_equal(once.numpy(), expected)


def test_unreadable_audio_always_gives_a_reason(tmp_path):
    (tmp_path / "junk.mp3").write_bytes(b"not audio at all " * 50)
    for fn in (audio_duration, lambda p: load_audio(p, 1600, 1)):
        with pytest.raises(
            DataError, match=r"junk.mp3: unreadable audio \(soundfile: .+; librosa: .+\)"
        ) as exc:
            fn(tmp_path / "junk.mp3")
        assert "()" not in str(exc.value) and "librosa: )" not in str(exc.value)


def test_loud_audio_gives_a_data_error_and_no_cache_file(tmp_path):
    loud = write_wav(tmp_path / "loud.wav", noise(5.0) * 1e31, subtype="FLOAT")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"loud.wav: MFCCs are not finite .* audio peaks at [\d.]+e\+30"):
        mfcc_for_recording(loud, tiny_model(), 20, cache_dir=cache)
    assert not cache.exists() or not list(cache.iterdir())


def test_corrupt_cache_file_is_recomputed(tmp_path):
    path = write_wav(tmp_path / "a.wav", noise(5.0))
    first = mfcc_for_recording(path, tiny_model(), 20, cache_dir=tmp_path / "cache")
    target, expected = first.filename, np.array(first)
    del first
    with open(target, "r+b") as fh:  # a half-written or damaged file: keep the header, lose the data
        fh.truncate(200)
    with pytest.warns(UserWarning, match="corrupt MFCC cache file"):
        again = mfcc_for_recording(path, tiny_model(), 20, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again, expected)
    np.testing.assert_array_equal(np.load(target), expected)  # the file on disk is whole again


# --- EDA files: limits, rows, locales --------------------------------------------------------------


def test_hku956_file_with_e4_header_rows_is_named(tmp_path):
    path = tmp_path / "1_123.csv"
    path.write_text("1600000000.000000\n4.000000\n" + "".join(f"{v:.4f}\n" for v in eda_trace(20.0)))
    with pytest.raises(
        DataError, match=r"1_123.csv: rows 1-2 \(1600000000.000000, 4\) look like an E4 header"
    ):
        read_hku956_eda(path)


def test_value_outside_physiological_range_names_file_row_and_value(tmp_path):
    values = eda_trace(20.0)
    values[41] = 250.0  # line 43 of the file (header + 0-based 41)
    rows = read_manifest(write_manifest_csv(tmp_path / "m.csv", [pair(tmp_path, "odd", eda=values)]))
    model = tiny_model()
    with pytest.raises(DataError, match=r"odd.csv: row 43: EDA 250 µS is above data.eda_max_us = 100 µS"):
        prepare_recording(rows[0], model, data_cfg(tmp_path))
    values[41] = 0.0
    pair(tmp_path, "odd", eda=values)
    with pytest.raises(DataError, match=r"odd.csv: row 43: EDA 0 µS is below data.eda_min_us = 0.01 µS"):
        prepare_recording(rows[0], model, data_cfg(tmp_path))
    relaxed = data_cfg(tmp_path, eda_min_us=0.0, max_eda_jump_us=None)
    assert prepare_recording(rows[0], model, relaxed).n_steps == 80


def test_one_sample_jump_is_flagged_as_an_artifact(tmp_path):
    values = eda_trace(20.0)
    values[30:] += 8.0  # the electrode slipped: +8 µS in 0.25 s
    rows = read_manifest(write_manifest_csv(tmp_path / "m.csv", [pair(tmp_path, "slip", eda=values)]))
    model = tiny_model()
    with pytest.raises(
        DataError, match=r"slip.csv: row 32: EDA jumps from [\d.]+ to [\d.]+ µS in one sample.*artifact"
    ):
        prepare_recording(rows[0], model, data_cfg(tmp_path))
    assert prepare_recording(rows[0], model, data_cfg(tmp_path, max_eda_jump_us=10.0)).n_steps == 80


def test_european_csv_is_read_with_its_separator_and_decimal_comma(tmp_path):
    values = eda_trace(10.0)
    lines = ["time_s;eda_us"] + [f"{i / 4:.2f};{v:.4f}".replace(".", ",") for i, v in enumerate(values)]
    (tmp_path / "eu.csv").write_text("\n".join(lines) + "\n")
    sig = read_generic_eda(tmp_path / "eu.csv")
    assert sig.sample_rate == pytest.approx(4.0)
    np.testing.assert_allclose(sig.values, values, atol=1e-4)
    assert 4.0 < sig.values.min() and sig.values.max() < 7.0


def test_decimal_commas_in_a_one_column_csv_with_header_are_named(tmp_path):
    (tmp_path / "eda.csv").write_text("eda_us\n4,79\n4,81\n")  # pandas would read 79 and 81 µS
    with pytest.raises(
        DataError, match=r"eda.csv: row 2 \('4,79'\) has more fields than the header .*decimal commas"
    ):
        read_generic_eda(tmp_path / "eda.csv", sample_rate=4.0)


def test_decimal_commas_in_a_one_number_per_row_file_are_named(tmp_path):
    path = tmp_path / "EDA.csv"
    path.write_text("1600000000\n4\n4,79\n4,81\n4,80\n")
    with pytest.raises(DataError, match=r"EDA.csv: row 3 is '4,79': decimal commas"):
        read_e4_eda(path)
    (tmp_path / "1_5.csv").write_text("4,79\n4,81\n4,80\n")
    with pytest.raises(DataError, match=r"1_5.csv: row 1 is '4,79': decimal commas"):
        read_hku956_eda(tmp_path / "1_5.csv")


def test_time_column_going_backwards_names_the_row(tmp_path):
    times = np.arange(40) / 4.0
    times[20], times[21] = times[21], times[20]  # two rows swapped
    lines = ["time_s,eda_us"] + [f"{t:.2f},{v:.4f}" for t, v in zip(times, eda_trace(10.0), strict=True)]
    (tmp_path / "back.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"back.csv: time column 'time_s' goes backwards at row 23: 5 s after 5.25 s"
    ):
        read_generic_eda(tmp_path / "back.csv")


def test_non_numeric_cell_names_its_row(tmp_path):
    path = write_e4_eda(tmp_path / "EDA.csv", eda_trace(5.0))
    lines = path.read_text().splitlines()
    lines[6] = "EDA"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"EDA.csv: EDA values holds non-numeric values: row 7 is 'EDA'"):
        read_e4_eda(path)


# --- cropping to the overlap ---------------------------------------------------------------------


def e4_session(folder, song_s: float, before_s: float, after_s: float, end_mark: bool = True, seed=0):
    """An E4 session that starts `before_s` before the song and runs `after_s` past its end."""
    write_mp3(folder / "song.mp3", song_s, seed=seed)
    values = eda_trace(before_s + song_s + after_s, seed=seed)
    values[: int(before_s * 4) // 2] = 0.0  # no skin contact yet: the E4 reads 0 (cropped away)
    write_e4_eda(folder / "EDA.csv", values)
    tags = [E4_START + before_s] + ([E4_START + before_s + song_s] if end_mark else [])
    (folder / "tags.csv").write_text("".join(f"{t:.3f}\n" for t in tags))


@pytest.mark.parametrize("end_mark", [True, False])
def test_e4_session_running_20_s_past_the_song_is_cropped(tmp_path, end_mark):
    e4_session(tmp_path / "e4" / "s01" / "day1", song_s=30.0, before_s=10.0, after_s=20.0, end_mark=end_mark)
    rows = read_manifest(build_e4_manifest(tmp_path / "e4", tmp_path / "m.csv"))
    assert rows[0].offset_s == -10.0 and rows[0].play_duration_s == (30.0 if end_mark else None)
    rec = prepare_recording(rows[0], tiny_model(), data_cfg(tmp_path))
    assert rec.n_steps == 120 and rec.audio_start_s == 0.0  # the whole song, at 4 Hz
    assert rec.crop.eda_before_s == 10.0 and rec.crop.eda_after_s == pytest.approx(20.0)
    assert rec.crop.describe(min_s=0.25).startswith("EDA 10.00 s before + 20.00 s after")
    expected = eda_trace(60.0)[40:160]
    np.testing.assert_allclose(rec.eda_us[0], expected, atol=1e-5)  # aligned: the song's own EDA


def test_listener_who_stopped_early_is_cropped_by_play_duration(tmp_path):
    root = tmp_path / "HKU956"
    folder = root / "1. physiological_signals" / "hku1904" / "EDA"
    folder.mkdir(parents=True)
    (folder / "3_777.csv").write_text("".join(f"{v:.4f}\n" for v in eda_trace(47.0)))  # E4 ran 2 s on
    write_mp3(root / "2. original_song_audio" / "777.mp3", 120.0)
    (root / "3. AV_ratings.csv").write_text(
        "participant_id,song_no,song_id,valence,arousal,play_duration\nhku1904,3,777,0.5,0.2,45\n"
    )
    rows = read_manifest(build_hku956_manifest(root, tmp_path / "m.csv"))
    assert rows[0].play_duration_s == 45.0
    rec = prepare_recording(rows[0], tiny_model(), data_cfg(tmp_path))
    assert rec.n_steps == 180  # 45 s played, at 4 Hz
    assert rec.crop.audio_after_s == pytest.approx(75.0) and rec.crop.eda_after_s == pytest.approx(2.0)
    assert rec.crop.describe() == "EDA 2.00 s after; audio 75.00 s after (played 45.00 s)"


def test_play_duration_longer_than_the_audio_is_an_error(tmp_path):
    row = pair(tmp_path, "a", seconds=20.0, play_duration_s=40.0)
    rows = read_manifest(write_manifest_csv(tmp_path / "m.csv", [row]))
    with pytest.raises(DataError, match=r"a.wav: the playback of a lasted 40.00 s .* only 20.00 s long"):
        prepare_recording(rows[0], tiny_model(), data_cfg(tmp_path))


def test_overlap_shorter_than_a_window_is_an_error(tmp_path):
    row = pair(tmp_path, "a", seconds=20.0, offset_s=17.0)  # the EDA starts 3 s before the audio ends
    rows = read_manifest(write_manifest_csv(tmp_path / "m.csv", [row]))
    with pytest.raises(
        DataError, match=r"a.csv: recording has 12 EDA steps \(3.00 s\) where audio and EDA overlap"
    ):
        prepare_recording(rows[0], tiny_model(), data_cfg(tmp_path))


# --- builders: nothing vanishes silently ---------------------------------------------------------


def pmemo(root, ids=("1", "4"), seconds=20.0):
    t = np.arange(int(seconds * 50)) / 50.0
    for music_id in ids:
        lines = ["time,100177"] + [
            f"{x:.2f},{y:.4f}" for x, y in zip(t, eda_trace(seconds, 50.0), strict=True)
        ]
        (root / "EDA").mkdir(parents=True, exist_ok=True)
        (root / "EDA" / f"{music_id}_EDA.csv").write_text("\n".join(lines) + "\n")


def test_pmemo2019_reads_metadata_and_lists_songs_left_out(tmp_path):
    root = tmp_path / "PMEmo2019"
    pmemo(root, ids=("1", "4", "7"))
    write_wav(root / "chorus" / "1.mp3", noise(20.0), format="WAV")
    write_wav(root / "chorus" / "chorus_four.wav", noise(20.0))  # named by metadata.csv only
    write_wav(root / "chorus" / "9.mp3", noise(20.0), format="WAV")  # audio, but no EDA
    (root / "metadata.csv").write_text("musicId,fileName,title\n1,1.mp3,a\n4,chorus_four.wav,b\n7,7.mp3,c\n")
    manifest, skips = caught_skips(lambda: build_pmemo2019_manifest(root, tmp_path / "m.csv"))
    rows = read_manifest(manifest)
    assert [(r.recording_id, r.audio_path.name) for r in rows] == [
        ("pmemo-1-100177", "1.mp3"),
        ("pmemo-4-100177", "chorus_four.wav"),
    ]
    assert len(skips) == 1 and "left out 2 PMEmo2019 item(s)" in skips[0]
    assert "7_EDA.csv: no audio: chorus/7.mp3 not found" in skips[0] and "9.mp3: no EDA" in skips[0]
    assert [x.item for x in read_left_out(manifest)] == ["pmemo-7", "pmemo-9"]
    with pytest.raises(
        DataError, match=r"7_EDA.csv: no audio: chorus/7.mp3 not found \(pmemo-7\); 1 more left out"
    ):
        build_pmemo2019_manifest(root, tmp_path / "m.csv", on_bad_recording="error")


def hku_song_links(root, *rows):
    (root / "2. original_song_audio.csv").write_text(
        "song_no,song_id,song_name,link\n"
        + "".join(f"{i},{sid},x,{url}\n" for i, (sid, url) in enumerate(rows))
    )


def test_hku956_links_not_audio_is_said(tmp_path):
    root = tmp_path / "HKU956"
    folder = root / "1. physiological_signals" / "hku1904" / "EDA"
    folder.mkdir(parents=True)
    (folder / "1_111.csv").write_text("".join(f"{v:.4f}\n" for v in eda_trace(20.0)))
    hku_song_links(root, ("111", "https://example.org/music/Some%20Song.mp3"))
    with pytest.raises(
        DataError, match=r"original_song_audio.csv: HKU956 ships links to its 1 songs, not audio"
    ):
        build_hku956_manifest(root, tmp_path / "m.csv")
    write_mp3(root / "downloads" / "Some Song.mp3", 20.0)  # downloaded under the link's file name
    (folder / "2_222.csv").write_text("".join(f"{v:.4f}\n" for v in eda_trace(20.0)))
    manifest, skips = caught_skips(lambda: build_hku956_manifest(root, tmp_path / "m.csv"))
    rows = read_manifest(manifest)
    assert [(r.recording_id, r.audio_path.name) for r in rows] == [("hku956-hku1904-1_111", "Some Song.mp3")]
    assert len(skips) == 1 and "2_222.csv: no audio for song 222 under HKU956" in skips[0]


def test_e4_build_skips_one_bad_session_not_the_build(tmp_path):
    root = tmp_path / "e4"
    e4_session(root / "s01" / "day1", song_s=30.0, before_s=4.0, after_s=4.0)
    e4_session(root / "s02" / "day1", song_s=30.0, before_s=4.0, after_s=4.0, seed=1)
    write_mp3(root / "s02" / "day1" / "other.mp3", 5.0)  # two audio files: which one played?
    e4_session(root / "s03" / "day1", song_s=30.0, before_s=4.0, after_s=4.0, seed=2)
    write_e4_eda(root / "s03" / "day1" / "EDA.csv", eda_trace(38.0), rate=0.0)  # broken export
    e4_session(root / "s04" / "day1", song_s=30.0, before_s=4.0, after_s=4.0, seed=3)
    (root / "s04" / "day1" / "song.mp3").unlink()  # no audio
    manifest, skips = caught_skips(lambda: build_e4_manifest(root, tmp_path / "m.csv"))
    assert [r.recording_id for r in read_manifest(manifest)] == ["e4-s01-day1"]
    assert len(skips) == 1
    assert (
        "e4-s02-day1" in skips[0]
        and "2 audio files (other.mp3, song.mp3); keep only the one played" in skips[0]
    )
    assert "s03/day1/EDA.csv: row 2 (the E4 sample rate) must be a rate > 0 Hz, got 0" in skips[0]
    assert "e4-s04-day1" in skips[0] and "no audio file in the session folder" in skips[0]


def test_build_datasets_reports_builder_and_recording_skips_in_one_warning(tmp_path):
    root = tmp_path / "e4"
    for i in range(4):
        e4_session(root / f"s0{i}" / "day1", song_s=12.0, before_s=2.0, after_s=20.0, seed=i)
    (root / "s00" / "day1" / "song.mp3").unlink()  # left out by the builder
    write_e4_eda(root / "s01" / "day1" / "EDA.csv", eda_trace(34.0) + 200.0)  # out of range: skipped
    cfg = tiny_experiment(
        tmp_path,
        source="e4",
        path=root,
        on_bad_recording="skip",
        split_by="recording",
        val_fraction=0.0,
        test_fraction=0.0,
    )
    bundle, skips = caught_skips(lambda: build_datasets(cfg))
    assert len(skips) == 1 and skips[0].startswith("skipped 2 of 4 recordings")
    assert "no audio file in the session folder" in skips[0] and "above data.eda_max_us = 100 µS" in skips[0]
    table = bundle.summary()
    used = table[table.status == "used"]
    assert sorted(used.recording_id) == ["e4-s02-day1", "e4-s03-day1"]
    assert (used.duration_s == 12.0).all() and (used.split == "train").all()
    assert (used.crop == "EDA 2.00 s before + 20.00 s after (played 12.00 s)").all()
    left = table[table.status == "left out"].set_index("recording_id").reason
    assert (
        "no audio file" in left["e4-s00-day1"] and "row 11: EDA 20" in left["e4-s01-day1"]
    )  # row 11: the song starts 2 s in
    cfg_error = cfg.model_copy(update={"data": cfg.data.model_copy(update={"on_bad_recording": "error"})})
    with pytest.raises(DataError, match=r"s00/day1: no audio file in the session folder \(e4-s00-day1\)"):
        build_datasets(cfg_error)
