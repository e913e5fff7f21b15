"""Audio loading, channel matching, MFCC alignment and the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import wavenet_lib.data.audio as audio_mod
import wavenet_lib.data.features as features_mod
from wavenet_lib.data.audio import load_audio, match_channels
from wavenet_lib.data.features import compute_mfcc, mfcc_for_recording
from wavenet_lib.errors import DataError

from .conftest import AUDIO_SR, noise, tiny_model, write_wav


@pytest.mark.parametrize(
    "ext,kw", [("wav", {}), ("flac", {}), ("ogg", {"format": "OGG", "subtype": "VORBIS"})]
)
def test_loads_wav_flac_ogg(tmp_path, ext, kw):
    path = write_wav(tmp_path / f"a.{ext}", noise(1.0), **kw)
    audio = load_audio(path, AUDIO_SR, 1)
    assert audio.shape == (1, AUDIO_SR) and audio.dtype == np.float32
    assert 0.05 < audio.std() < 0.2


def test_loads_mp3(tmp_path):
    try:
        path = write_wav(tmp_path / "a.mp3", noise(1.0, sr=16000), sr=16000, format="MP3")
    except Exception:  # pragma: no cover - libsndfile without mp3 encoding
        pytest.skip("this libsndfile cannot write mp3")
    audio = load_audio(path, AUDIO_SR, 1)
    assert audio.shape[0] == 1 and abs(audio.shape[1] - AUDIO_SR) < AUDIO_SR * 0.1


def test_falls_back_to_librosa_when_soundfile_fails(tmp_path, monkeypatch):
    path = write_wav(tmp_path / "a.wav", noise(0.5))

    def broken(*args, **kwargs):
        raise RuntimeError("libsndfile cannot decode this")

    monkeypatch.setattr(audio_mod.sf, "read", broken)
    assert load_audio(path, AUDIO_SR, 1).shape == (1, AUDIO_SR // 2)


def test_channels_duplicated_and_mixed(tmp_path):
    mono = write_wav(tmp_path / "m.wav", noise(0.5))
    stereo_data = np.stack([np.full(800, 0.2), np.full(800, -0.4)], axis=1)
    stereo = write_wav(tmp_path / "s.wav", stereo_data)
    two = load_audio(mono, AUDIO_SR, 2)
    np.testing.assert_array_equal(two[0], two[1])
    one = load_audio(stereo, AUDIO_SR, 1)
    np.testing.assert_allclose(one, -0.1, atol=1e-3)
    four = np.arange(4, dtype=np.float32)[:, None] * np.ones((4, 3), np.float32)
    np.testing.assert_allclose(match_channels(four, 2)[:, 0], [0.5, 2.5])
    with pytest.raises(DataError, match="channels"):
        match_channels(np.zeros((2, 10), np.float32), 3, "x.wav")


def test_resamples_to_config_rate(tmp_path):
    sr = 8000
    t = np.arange(sr) / sr
    path = write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 200 * t), sr=sr)
    audio = load_audio(path, AUDIO_SR, 1)[0]
    assert audio.shape == (AUDIO_SR,)
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) == 200  # 1 s of audio: bin k is k Hz


@pytest.mark.parametrize("seconds", [4.0, 3.9, 4.3])
def test_exactly_T_times_spf_frames(seconds):
    cfg = tiny_model()
    steps = 16
    mfcc = compute_mfcc(noise(seconds)[None], cfg, steps)
    assert mfcc.shape == (1, steps * cfg.spectral_frames_per_eda_step, cfg.num_mfccs)
    assert mfcc.dtype == np.float32 and np.isfinite(mfcc).all()


def test_click_lands_in_its_frames_and_step():
    cfg = tiny_model()  # hop 40, window 80, spf 10, 4 Hz EDA
    steps, hop, spf = 12, cfg.mfcc_hop_size, cfg.spectral_frames_per_eda_step
    quiet = np.full((1, steps * spf * hop), 1e-3, np.float32)
    click_at = 1237  # sample; 0.773 s → EDA step 3
    clicked = quiet.copy()
    clicked[0, click_at] = 1.0
    a, b = compute_mfcc(quiet, cfg, steps), compute_mfcc(clicked, cfg, steps)
    changed = np.flatnonzero(np.abs(a - b).max(axis=(0, 2)) > 1e-3)
    # frame f covers [(f+1)*hop - window, (f+1)*hop): the click is in frames 30 and 31
    first, last = click_at // hop, (click_at + cfg.mfcc_window_size) // hop - 1
    np.testing.assert_array_equal(changed, np.arange(first, last + 1))
    assert first // spf == int(click_at / AUDIO_SR * cfg.eda_sample_rate) == 3


def test_features_cached_and_not_recomputed(tmp_path, monkeypatch):
    cfg = tiny_model()
    path = write_wav(tmp_path / "a.wav", noise(4.0))
    first = mfcc_for_recording(path, cfg, 16, cache_dir=tmp_path / "cache")
    assert isinstance(first, np.memmap)
    files = list((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(features_mod, "compute_mfcc", fail)
    again = mfcc_for_recording(path, cfg, 16, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first, again)
    assert files[0].stat().st_mtime_ns == mtime


def test_cache_key_follows_settings_and_content(tmp_path):
    cfg = tiny_model()
    path = write_wav(tmp_path / "a.wav", noise(4.0))
    key = features_mod.mfcc_cache_key(path, cfg, 16)
    assert features_mod.mfcc_cache_key(path, tiny_model(num_mfccs=10), 16) != key
    assert features_mod.mfcc_cache_key(path, cfg, 15) != key
    assert features_mod.mfcc_cache_key(path, cfg, 16, start_s=0.5) != key
    write_wav(path, noise(4.0, seed=1))
    assert features_mod.mfcc_cache_key(path, cfg, 16) != key


def test_empty_audio_is_a_data_error(tmp_path):
    path = write_wav(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(DataError, match="empty.wav.*empty"):
        load_audio(path, AUDIO_SR, 1)


def test_unreadable_audio_is_a_data_error(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio" * 10)
    with pytest.raises(DataError, match="garbage.wav.*unreadable"):
        load_audio(path, AUDIO_SR, 1)


def test_missing_audio_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nope.wav.*not found"):
        load_audio(tmp_path / "nope.wav", AUDIO_SR, 1)


def test_soundfile_reads_back_what_we_wrote(tmp_path):
    path = write_wav(tmp_path / "a.wav", noise(0.25))
    assert sf.info(str(path)).samplerate == AUDIO_SR
