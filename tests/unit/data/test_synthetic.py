"""The synthetic dataset: determinism, physiology, and an audio → EDA link neurokit2 can see."""

from __future__ import annotations

import warnings

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest

from wavenet_lib.data.manifest import read_manifest
from wavenet_lib.data.synthetic import make_synthetic_dataset, scr_shape

EDA_SR = 4.0
DURATION = 120.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    manifest = make_synthetic_dataset(
        out,
        n_recordings=4,
        duration_s=DURATION,
        seed=3,
        audio_sample_rate=1600,
        eda_sample_rate=EDA_SR,
        n_subjects=2,
    )
    return out, read_manifest(manifest)


def load(out, rid):
    eda = pd.read_csv(out / f"{rid}_eda.csv")
    return eda, pd.read_csv(out / f"{rid}_events.csv"), pd.read_csv(out / f"{rid}_spontaneous.csv")


def test_same_seed_same_bytes(tmp_path):
    kwargs = dict(n_recordings=2, duration_s=20.0, audio_sample_rate=1600, eda_sample_rate=EDA_SR)
    a = make_synthetic_dataset(tmp_path / "a", seed=7, **kwargs).parent
    b = make_synthetic_dataset(tmp_path / "b", seed=7, **kwargs).parent
    c = make_synthetic_dataset(tmp_path / "c", seed=8, **kwargs).parent
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 2 * 4 + 3
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert (a / "syn-000.wav").read_bytes() != (c / "syn-000.wav").read_bytes()


def test_scr_shape_rises_in_about_a_second_and_recovers_slowly():
    t = np.linspace(0, 20, 2001)
    s = scr_shape(t, tau_decay=3.0)
    assert s.max() == pytest.approx(1.0, abs=1e-3) and 0.8 < t[np.argmax(s)] < 1.8
    assert s[t < 0].size == 0 and scr_shape(np.array([-1.0]))[0] == 0.0
    assert 0.2 < s[np.searchsorted(t, 5.0)] < 0.6  # still well up 5 s after onset


def test_scl_range_and_spontaneous_rate(dataset):
    out, rows = dataset
    rates = []
    for row in rows:
        eda, _, spont = load(out, row.recording_id)
        assert 2.0 <= eda["eda_us"].min() and eda["eda_us"].max() <= 20.0
        assert len(eda) == DURATION * EDA_SR
        rates.append(len(spont) / (DURATION / 60.0))
    assert 0.5 <= np.mean(rates) <= 3.5


def test_events_spaced_and_mostly_evoking(dataset):
    out, rows = dataset
    events = pd.concat([load(out, r.recording_id)[1] for r in rows])
    for row in rows:
        onsets = load(out, row.recording_id)[1]["onset_s"].to_numpy()
        assert np.diff(onsets).min() >= 6.0
    assert events["evoked"].mean() >= 0.8
    evoked = events[events["evoked"] == 1]
    assert evoked["latency_s"].between(1.0, 3.0).all()


def test_amplitude_grows_with_loudness_and_habituates(dataset):
    out, rows = dataset
    for row in rows:
        ev = load(out, row.recording_id)[1]
        ev = ev[ev["evoked"] == 1].reset_index(drop=True)
        # log amp = log gain + log(0.25 + 0.75 loudness) + k log h, k = earlier evoked SCRs
        X = np.column_stack([np.ones(len(ev)), np.log(0.25 + 0.75 * ev["loudness"]), np.arange(len(ev))])
        coef, *_ = np.linalg.lstsq(X, np.log(ev["amplitude_us"]), rcond=None)
        assert coef[1] == pytest.approx(1.0, abs=0.05) and coef[2] < 0


def test_neurokit_finds_scrs_after_evoking_sounds_within_latency(dataset):
    out, rows = dataset
    found = total = 0
    for row in rows:
        eda, events, _ = load(out, row.recording_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            phasic = nk.eda_phasic(eda["eda_us"].to_numpy(), sampling_rate=EDA_SR, method="highpass")
            _, info = nk.eda_peaks(phasic["EDA_Phasic"].to_numpy(), sampling_rate=EDA_SR, amplitude_min=0.01)
        onsets = np.asarray(info["SCR_Onsets"], dtype=float) / EDA_SR
        onsets = onsets[np.isfinite(onsets)]
        for onset in events.loc[events["evoked"] == 1, "onset_s"]:
            total += 1
            # within the 1-3 s latency range, with 0.5 s slack for onset detection at 4 Hz
            found += bool(((onsets >= onset + 0.5) & (onsets <= onset + 3.5)).any())
    assert total >= 20 and found / total >= 0.9
