"""The embedded music dataset: files, determinism, and ground truth that matches the written audio."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from scipy.signal import find_peaks

from wavenet_lib.configs import SyntheticDataConfig, WavenetConfig, load_config
from wavenet_lib.data.features import compute_mfcc
from wavenet_lib.data.listener import RULES, causal_ema, feature_events, listener_feature
from wavenet_lib.data.manifest import read_manifest
from wavenet_lib.data.playlists import PIECES, music_path
from wavenet_lib.data.synthetic import make_synthetic_dataset

ROOT = Path(__file__).resolve().parents[3]
AUDIO_SR = 4000
EDA_SR = 4.0
DURATION = 90.0
N_RECORDINGS = 4


def build(out: Path, **settings) -> Path:
    cfg = SyntheticDataConfig(
        **({"n_recordings": N_RECORDINGS, "n_subjects": 2, "duration_s": DURATION} | settings)
    )
    return make_synthetic_dataset(out, cfg, AUDIO_SR, EDA_SR, progress=False).parent


@pytest.fixture(scope="module", params=["loudness_rise", "spectral_novelty"])
def dataset(request, tmp_path_factory) -> tuple[Path, str]:
    out = build(tmp_path_factory.mktemp(request.param), seed=3, listener=request.param)
    return out, request.param


def table(out: Path, rid: str, kind: str) -> pd.DataFrame:
    return pd.read_csv(out / f"{rid}_{kind}.csv")


def recording_ids(out: Path) -> list[str]:
    return [r.recording_id for r in read_manifest(out / "manifest.csv")]


def test_same_settings_same_bytes(tmp_path):
    a = build(tmp_path / "a", n_recordings=2, duration_s=20.0, seed=7)
    b = build(tmp_path / "b", n_recordings=2, duration_s=20.0, seed=7)
    c = build(tmp_path / "c", n_recordings=2, duration_s=20.0, seed=8)
    names = sorted(p.name for p in a.iterdir())
    per_recording = {"", "_eda", "_events", "_spontaneous", "_playlist"}
    expected = {f"syn-{i:03d}{s}.{'wav' if s == '' else 'csv'}" for i in range(2) for s in per_recording}
    assert set(names) == expected | {"manifest.csv", "subjects.json", "synthetic_settings.json"}
    assert names == sorted(p.name for p in b.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert (a / "syn-000.wav").read_bytes() != (c / "syn-000.wav").read_bytes()


def test_events_are_the_rule_recomputed_from_the_written_audio(dataset):
    """Every event (evoked or not) is a feature peak above the subject threshold; every peak is one."""
    out, listener = dataset
    subjects = json.loads((out / "subjects.json").read_text())
    manifest = {r.recording_id: r.subject_id for r in read_manifest(out / "manifest.csv")}
    n_events = 0
    for rid, subject in manifest.items():
        audio, sr = sf.read(out / f"{rid}.wav", dtype="float32")
        assert sr == AUDIO_SR and len(audio) == DURATION * AUDIO_SR
        threshold = RULES[listener].threshold * subjects[subject]["threshold_factor"]
        values, times = listener_feature(listener, audio, sr)
        when, strength = feature_events(values, times, threshold, min_gap_s=5.0)
        events = table(out, rid, "events")
        assert (events["feature"] == listener).all()
        np.testing.assert_allclose(events["threshold"], threshold, atol=1e-4)
        np.testing.assert_allclose(events["onset_s"], when, atol=1e-4)
        np.testing.assert_allclose(events["strength"], strength, atol=1e-4)
        assert (events["strength"] > events["threshold"]).all()
        assert (np.diff(events["onset_s"]) >= 5.0).all()
        n_events += len(events)
    assert n_events >= 10


def test_first_event_selection_is_recomputed_from_the_written_audio(tmp_path):
    """event_selection: first (the default) writes the causal events: the first peak after each
    refractory gap; strongest (the rule before) differs on the same audio."""
    out = build(tmp_path / "first", seed=3)
    strongest = build(tmp_path / "strongest", seed=3, event_selection="strongest")
    subjects = json.loads((out / "subjects.json").read_text())
    manifest = {r.recording_id: r.subject_id for r in read_manifest(out / "manifest.csv")}
    moved = 0
    for rid, subject in manifest.items():
        audio, sr = sf.read(out / f"{rid}.wav", dtype="float32")
        threshold = RULES["loudness_rise"].threshold * subjects[subject]["threshold_factor"]
        values, times = listener_feature("loudness_rise", audio, sr)
        when, strength = feature_events(values, times, threshold, 5.0)
        events = table(out, rid, "events")
        np.testing.assert_allclose(events["onset_s"], when, atol=1e-4)
        np.testing.assert_allclose(events["strength"], strength, atol=1e-4)
        assert (np.diff(events["onset_s"]) >= 5.0).all()
        # every event is the first peak above threshold since the gap after the one before
        peak_times = times[find_peaks(values, height=threshold)[0]]
        for i, t in enumerate(events["onset_s"]):
            since = events["onset_s"].iloc[i - 1] + 5.0 if i else -np.inf
            assert not ((peak_times >= since) & (peak_times < t - 1e-3)).any()
        other = table(strongest, rid, "events")["onset_s"].to_numpy()
        moved += sum(np.abs(other - t).min() > 0.1 for t in when) if other.size else len(when)
    assert moved > 0  # the two selections differ on real music


def test_evoked_scrs_follow_their_event_within_the_rule_latency(dataset):
    out, listener = dataset
    lo, hi = RULES[listener].latency_s
    events = pd.concat([table(out, rid, "events") for rid in recording_ids(out)])
    evoked, silent = events[events["evoked"] == 1], events[events["evoked"] == 0]
    assert evoked["latency_s"].between(lo, hi).all()
    np.testing.assert_allclose(evoked["scr_onset_s"], evoked["onset_s"] + evoked["latency_s"], atol=2e-4)
    assert (evoked["amplitude_us"] > 0.02).all() and evoked["amplitude_us"].max() < 2.0
    assert silent["latency_s"].isna().all() and (silent["amplitude_us"] == 0).all()
    assert 0.7 <= len(evoked) / len(events) <= 1.0  # evoked_probability 0.9


def test_second_rule_has_other_events_and_latencies(tmp_path):
    loud = build(tmp_path / "loud", seed=5, listener="loudness_rise")
    novel = build(tmp_path / "novel", seed=5, listener="spectral_novelty")
    matched = total = 0
    for rid in recording_ids(loud):
        assert (loud / f"{rid}.wav").read_bytes() == (novel / f"{rid}.wav").read_bytes()  # same music
        a, b = table(loud, rid, "events"), table(novel, rid, "events")
        total += len(b)
        matched += sum(bool(len(a)) and np.abs(a["onset_s"].to_numpy() - t).min() < 1.0 for t in b["onset_s"])
        assert a["latency_s"].max() < b["latency_s"].min()
    assert total >= 10 and matched / total < 0.5


def test_tonic_level_resolution_and_spontaneous_rate(dataset):
    out, _ = dataset
    subjects = json.loads((out / "subjects.json").read_text())
    manifest = {r.recording_id: r.subject_id for r in read_manifest(out / "manifest.csv")}
    count = expected = 0.0
    for rid, subject in manifest.items():
        eda = table(out, rid, "eda")
        assert len(eda) == DURATION * EDA_SR
        assert 2.0 <= eda["eda_us"].min() and eda["eda_us"].max() <= 20.0
        steps = eda["eda_us"].to_numpy() / 0.0009  # E4 resolution
        np.testing.assert_allclose(steps, np.round(steps), atol=0.06)
        count += len(table(out, rid, "spontaneous"))
        expected += subjects[subject]["spontaneous_per_min"] * DURATION / 60.0
    # a Poisson count with each listener's own rate: within 3.5 standard deviations of its mean
    assert 1.0 <= subjects["subj-0"]["spontaneous_per_min"] <= 3.0
    assert abs(count - expected) <= 3.5 * np.sqrt(expected), (count, expected)


def test_neurokit_finds_evoked_scrs_at_their_onsets(dataset):
    out, _ = dataset
    found = total = 0
    for rid in recording_ids(out):
        eda, events = table(out, rid, "eda"), table(out, rid, "events")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            phasic = nk.eda_phasic(eda["eda_us"].to_numpy(), sampling_rate=EDA_SR, method="highpass")
            _, info = nk.eda_peaks(phasic["EDA_Phasic"].to_numpy(), sampling_rate=EDA_SR, amplitude_min=0.02)
        onsets = np.asarray(info["SCR_Onsets"], dtype=float) / EDA_SR
        onsets = onsets[np.isfinite(onsets)]
        for scr_onset in events.loc[events["evoked"] == 1, "scr_onset_s"]:
            if scr_onset > DURATION - 4.0:
                continue
            total += 1
            found += bool((np.abs(onsets - scr_onset) <= 1.0).any())  # 4 Hz: a few samples of slack
    assert total >= 10 and found / total >= 0.75


def test_sessions_are_cut_from_the_shipped_music_with_pauses(dataset):
    out, _ = dataset
    for rid in recording_ids(out):
        playlist = table(out, rid, "playlist")
        assert set(playlist["piece"]) <= set(PIECES) and len(playlist) >= 2
        assert (playlist["start_s"] >= 0).all() and (playlist["end_s"] <= DURATION + 1e-6).all()
        assert (
            playlist["start_s"].iloc[1:].to_numpy() >= playlist["end_s"].iloc[:-1].to_numpy() - 1e-6
        ).all()
        audio, sr = sf.read(out / f"{rid}.wav")
        level = {}
        for name, (a, b) in {
            "pause": (playlist["end_s"].iloc[0], playlist["start_s"].iloc[1]),
            "music": (playlist["start_s"].iloc[0] + 3.0, playlist["end_s"].iloc[0] - 4.0),
        }.items():
            seg = audio[int(a * sr) : int(b * sr)]
            level[name] = 20 * np.log10(np.sqrt(np.mean(seg**2))) if len(seg) > sr // 10 else None
        if level["pause"] is not None:
            assert level["pause"] < -55.0  # the noise floor only
        assert level["music"] > -45.0


def test_shipped_music_is_package_data_with_attribution():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"wavenet_lib.data" = ["music/*.ogg", "music/*.md"]' in pyproject
    attribution = (ROOT / "wavenet_lib" / "data" / "music" / "ATTRIBUTION.md").read_text()
    for piece in PIECES:
        assert music_path(piece).is_file() and f"{piece}.ogg" in attribution
    assert attribution.count("CC BY 3.0") >= 2 and "Public Domain Mark 1.0" in attribution


def test_quickstart_configs_differ_only_in_the_listener_its_time_scale_and_window_draw():
    base = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    other = yaml.safe_load((ROOT / "configs" / "quickstart_novelty.yaml").read_text())
    assert base["data"]["synthetic"]["listener"] == "loudness_rise"
    assert other["data"]["synthetic"]["listener"] == "spectral_novelty"
    # The novelty rule looks 5 s back and answers up to 4 s later: its context covers ~9 s twice.
    assert base["model"]["context_size_in_seconds"] == 6 and other["model"]["context_size_in_seconds"] == 20
    # Its longer windows come fewer per batch, with as many scored steps per batch as the quickstart.
    assert other["data"]["target_steps"] > base["data"]["target_steps"]
    scored = [cfg["train"]["batch_size"] * cfg["data"]["target_steps"] for cfg in (base, other)]
    assert scored[0] == scored[1]
    # Model, data and training are the same otherwise; only how much audio guidance sampling adds
    # is each config's own, chosen by one rule on its validation listeners (notebook 05), and
    # small in both; both guide over the sound heard so far.
    for cfg in (base, other):
        assert 0.0 < cfg["sampling"]["audio_guidance"] <= 0.3
        assert cfg["sampling"]["guidance_reference"] == "running_mean"
    # Oversampling windows that hold an SCR onset selects on the quickstart's 8 s windows (about
    # half hold one); nearly all the novelty config's 16 s windows do, so it stays off there.
    assert base["data"]["event_oversampling"] == 4 and other["data"]["event_oversampling"] == 1
    for cfg in (base, other):  # the name and the dataset folder follow the listener
        del cfg["name"], cfg["data"]["data_dir"], cfg["data"]["synthetic"]["listener"]
        del cfg["model"]["context_size_in_seconds"], cfg["sampling"]["audio_guidance"]
        del cfg["data"]["target_steps"], cfg["train"]["batch_size"]
        del cfg["data"]["event_oversampling"]
    assert base == other
    assert (
        load_config(ROOT / "configs" / "quickstart_novelty.yaml").data.synthetic.listener
        == "spectral_novelty"
    )


@pytest.mark.parametrize("listener,min_r2", [("loudness_rise", 0.8), ("spectral_novelty", 0.55)])
def test_rule_feature_is_readable_from_the_models_causal_mfccs(tmp_path, listener, min_r2):
    """What the model sees (20 standardized MFCCs at 8 kHz) holds the rule's feature: a linear
    read-out of causal averages of the MFCCs, fitted on two sessions, predicts a third."""
    model = WavenetConfig(
        context_size_in_seconds=6, audio_sample_rate=8000, eda_sample_rate=4, mfcc_window_size=400,
        mfcc_hop_size=200, num_mfccs=20, hidden_channels=8,
    )  # fmt: skip
    cfg = SyntheticDataConfig(n_recordings=3, n_subjects=3, duration_s=60.0, seed=1, listener=listener)
    out = make_synthetic_dataset(tmp_path, cfg, 8000, 4.0, progress=False).parent
    rows = []
    for rid in recording_ids(out):
        audio, sr = sf.read(out / f"{rid}.wav", dtype="float32")
        mfcc = compute_mfcc(audio[None], model, int(60 * 4))[0].T  # (20, frames)
        mfcc = (mfcc - mfcc.mean(1, keepdims=True)) / mfcc.std(1, keepdims=True)
        frame_end = (np.arange(mfcc.shape[1]) + 1) * 200 / 8000
        values, times = listener_feature(listener, audio, sr)
        short, long = causal_ema(mfcc, 0.5, 40.0), causal_ema(mfcc, 5.0, 40.0)
        x = np.concatenate(
            [causal_ema(mfcc, 0.2, 40.0), short, causal_ema(mfcc, 3.0, 40.0), long, (short - long) ** 2]
        )
        rows.append((np.vstack([x, np.ones(x.shape[1])]).T, np.interp(frame_end, times, values)))
    (xa, ya), (xb, yb), (xt, yt) = rows
    x_fit, y_fit = np.vstack([xa, xb]), np.concatenate([ya, yb])
    coef = np.linalg.solve(x_fit.T @ x_fit + 1.0 * np.eye(x_fit.shape[1]), x_fit.T @ y_fit)
    r2 = 1 - np.mean((xt @ coef - yt) ** 2) / np.var(yt)
    assert r2 > min_r2
