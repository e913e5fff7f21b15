"""Window datasets, splits, build_datasets and the bad-recording handling."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from wavenet_lib.data.bundle import build_datasets, split_rows
from wavenet_lib.data.manifest import read_manifest
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.data.recordings import load_recording, prepare_recording
from wavenet_lib.data.windows import WindowDataset, make_dataloader
from wavenet_lib.errors import DataError, SkippedRecordingsWarning
from wavenet_lib.models.quantization import dequantize, quantize

from .conftest import (
    eda_trace,
    manifest_cfg,
    noise,
    pair,
    tiny_experiment,
    tiny_model,
    write_wav,
)


@pytest.fixture(scope="module")
def bundle_and_cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bundle")
    cfg = tiny_experiment(tmp)
    return build_datasets(cfg), cfg


def test_item_contract(bundle_and_cfg):
    bundle, cfg = bundle_and_cfg
    m = cfg.model
    W, spf, levels = (
        m.first_full_step + cfg.data.target_steps,
        m.spectral_frames_per_eda_step,
        m.quantization_levels,
    )
    for ds in (bundle.train, bundle.val):
        item = ds[1]
        assert set(item) == {"mfcc", "eda_prev", "target", "recording_id", "start_step"}
        assert (
            item["mfcc"].shape == (m.in_channels, W * spf, m.num_mfccs)
            and item["mfcc"].dtype == torch.float32
        )
        assert item["eda_prev"].shape == (m.out_channels, W) and item["eda_prev"].dtype == torch.float32
        assert item["target"].shape == (m.out_channels, W) and item["target"].dtype == torch.int64
        rid, start = item["recording_id"], item["start_step"]
        eda = bundle.normalizers[rid].normalize(bundle.recordings[rid].eda_us)
        q = quantize(eda, levels)
        np.testing.assert_array_equal(item["target"].numpy(), q[:, start : start + W])
        np.testing.assert_allclose(
            item["eda_prev"][:, 1:].numpy(), dequantize(q[:, start : start + W - 1], levels)
        )
        expected_first = dequantize(q[:, start - 1], levels) if start > 0 else 0.0
        np.testing.assert_allclose(item["eda_prev"][:, 0].numpy(), expected_first)
        assert torch.isfinite(item["mfcc"]).all()


def test_first_window_starts_from_zero(bundle_and_cfg):
    bundle, _ = bundle_and_cfg
    item = bundle.val[0]
    assert item["start_step"] == 0 and item["eda_prev"][0, 0].item() == 0.0


def test_mfcc_window_matches_recording_frames(bundle_and_cfg):
    bundle, cfg = bundle_and_cfg
    item = bundle.val[2]
    full = load_recording(bundle.recordings[item["recording_id"]], cfg)
    spf, W = cfg.model.spectral_frames_per_eda_step, item["target"].shape[-1]
    s = item["start_step"]
    torch.testing.assert_close(item["mfcc"], full.mfcc[:, s * spf : (s + W) * spf])


def test_random_crops_are_deterministic_and_change_with_epoch(bundle_and_cfg):
    bundle, cfg = bundle_and_cfg
    ds = bundle.train
    starts = [(ds[i]["recording_id"], ds[i]["start_step"]) for i in range(len(ds))]
    assert starts == [(ds[i]["recording_id"], ds[i]["start_step"]) for i in range(len(ds))]
    ds.set_epoch(1)
    assert starts != [(ds[i]["recording_id"], ds[i]["start_step"]) for i in range(len(ds))]
    ds.set_epoch(0)
    assert len({s for _, s in starts}) > 1


def test_strided_windows_tile_targets(bundle_and_cfg):
    bundle, cfg = bundle_and_cfg
    starts = [
        bundle.val[i]["start_step"]
        for i in range(len(bundle.val))
        if bundle.val[i]["recording_id"] == "syn-000"
    ]
    assert starts == list(range(0, starts[-1] + 1, cfg.data.target_steps))


@pytest.mark.parametrize("split_by", ["subject", "recording"])
def test_splits_never_share_a_recording_or_subject(bundle_and_cfg, split_by):
    bundle, _ = bundle_and_cfg
    rows = read_manifest(bundle.manifest_path)
    splits = split_rows(rows, split_by, 0.34, 0.34, seed=0)
    ids = [set(v) for v in splits.values()]
    assert all(ids) and set.union(*ids) == {r.recording_id for r in rows}
    assert sum(map(len, ids)) == len(rows)
    subject = {r.recording_id: r.subject_id for r in rows}
    groups = [{subject[r] for r in v} for v in splits.values()] if split_by == "subject" else ids
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert splits == split_rows(rows, split_by, 0.34, 0.34, seed=0)
    assert all(set(bundle.splits[k]) for k in ("train", "val", "test"))


def test_synthetic_dataset_is_reused(bundle_and_cfg, monkeypatch):
    bundle, cfg = bundle_and_cfg
    from wavenet_lib.data import synthetic

    monkeypatch.setattr(synthetic, "synthesize_recording", lambda *a, **k: pytest.fail("regenerated"))
    again = build_datasets(cfg)
    assert again.splits == bundle.splits and again.manifest_path == bundle.manifest_path


def test_per_dataset_normalizer_is_shared(tmp_path):
    cfg = tiny_experiment(tmp_path, normalization="per_dataset")
    bundle = build_datasets(cfg)
    assert bundle.normalizer is not None
    assert all(n is bundle.normalizer for n in bundle.normalizers.values())
    train = np.concatenate([bundle.recordings[r].eda_us.ravel() for r in bundle.splits["train"]])
    assert bundle.normalizer.lo == train.min() and bundle.normalizer.hi == train.max()


def test_dataloader_batches(bundle_and_cfg):
    bundle, cfg = bundle_and_cfg
    batch = next(iter(make_dataloader(bundle.train, batch_size=4, shuffle=True, num_workers=0, seed=0)))
    assert batch["mfcc"].shape[:2] == (4, cfg.model.in_channels) and batch["target"].shape[0] == 4
    assert len(batch["recording_id"]) == 4


def test_features_memory_mapped_and_not_pickled(bundle_and_cfg):
    bundle, _ = bundle_and_cfg
    rec = next(iter(bundle.recordings.values()))
    assert isinstance(rec.mfcc(), np.memmap)
    ds = bundle.train
    ds[0]  # opens a memory map
    assert ds._mmaps and not pickle.loads(pickle.dumps(ds))._mmaps
    assert len(pickle.dumps(ds)) < rec.mfcc().nbytes * len(ds.recordings)


def test_load_recording_whole(bundle_and_cfg):
    bundle, cfg = bundle_and_cfg
    rid = bundle.splits["test"][0]
    full = bundle.load(rid, cfg)
    T = bundle.recordings[rid].n_steps
    assert full.mfcc.shape == (1, T * cfg.model.spectral_frames_per_eda_step, cfg.model.num_mfccs)
    assert full.eda.shape == (1, T) and -1 < full.eda.min() and full.eda.max() < 1
    np.testing.assert_allclose(full.normalizer.denormalize(full.eda.double().numpy()), full.eda_us, atol=1e-5)


def test_stereo_model_gets_duplicated_channels(tmp_path):
    cfg = manifest_cfg(tmp_path, [pair(tmp_path, "a")])
    stereo = cfg.model_copy(update={"model": tiny_model(in_channels=2)})
    rec = prepare_recording(read_manifest(cfg.data.path)[0], stereo.model, stereo.data)
    mfcc = rec.mfcc()
    assert mfcc.shape[0] == 2 and np.array_equal(mfcc[0], mfcc[1])


# --- bad input: one DataError per case, and skip mode -----------------------------------


def test_recording_shorter_than_receptive_field_is_a_data_error(tmp_path):
    model = tiny_model()
    seconds = model.receptive_field_eda_steps / model.eda_sample_rate  # one step short
    cfg = manifest_cfg(tmp_path, [pair(tmp_path, "short", seconds=seconds)])
    with pytest.raises(DataError, match=r"short.csv: recording has \d+ EDA steps .* at least \d+ are needed"):
        prepare_recording(read_manifest(cfg.data.path)[0], cfg.model, cfg.data)


def test_audio_longer_than_eda_is_cropped_to_the_overlap(tmp_path):
    row = pair(tmp_path, "a", seconds=20.0)
    write_wav(tmp_path / "a.wav", noise(25.0))
    cfg = manifest_cfg(tmp_path, [row], duration_tolerance_s=1.0)
    rec = prepare_recording(read_manifest(cfg.data.path)[0], cfg.model, cfg.data)
    assert rec.n_steps == 80 and rec.audio_start_s == 0.0
    assert rec.crop.audio_after_s == pytest.approx(5.0) and rec.crop.eda_after_s == 0.0
    assert rec.crop.describe() == "audio 5.00 s after"


def test_audio_outside_the_eda_is_a_data_error(tmp_path):
    row = pair(tmp_path, "a", seconds=20.0, offset_s=-30.0)  # EDA ended 10 s before the audio began
    cfg = manifest_cfg(tmp_path, [row])
    with pytest.raises(DataError, match=r"a.csv: audio and EDA do not overlap: with offset_s = -30"):
        prepare_recording(read_manifest(cfg.data.path)[0], cfg.model, cfg.data)


def test_offset_aligns_audio_and_eda(tmp_path):
    row = pair(tmp_path, "a", seconds=20.0, offset_s=2.0)
    write_wav(tmp_path / "a.wav", noise(22.0))
    cfg = manifest_cfg(tmp_path, [row])
    rec = prepare_recording(read_manifest(cfg.data.path)[0], cfg.model, cfg.data)
    assert rec.audio_start_s == 2.0 and rec.n_steps == 80


def test_out_channels_mismatch_is_a_data_error(tmp_path):
    cfg = manifest_cfg(tmp_path, [pair(tmp_path, "a")])
    with pytest.raises(DataError, match="out_channels = 2"):
        prepare_recording(read_manifest(cfg.data.path)[0], tiny_model(out_channels=2), cfg.data)


def test_build_errors_on_bad_recording_by_default(tmp_path):
    rows = [pair(tmp_path, "good1"), pair(tmp_path, "good2"), pair(tmp_path, "flat", eda=np.full(80, 2.0))]
    with pytest.raises(DataError, match="flat.csv: EDA is flat"):
        build_datasets(
            manifest_cfg(tmp_path, rows, split_by="recording", val_fraction=0.0, test_fraction=0.0)
        )


def test_build_skips_bad_recordings_with_one_warning(tmp_path):
    nan_eda = eda_trace(20.0)
    nan_eda[10:30] = np.nan
    rows = [
        pair(tmp_path, "good1"),
        pair(tmp_path, "good2"),
        pair(tmp_path, "flat", eda=np.full(80, 2.0)),
        pair(tmp_path, "gappy", eda=nan_eda),
        pair(tmp_path, "gone"),
    ]
    (tmp_path / "gone.wav").unlink()
    cfg = manifest_cfg(
        tmp_path, rows, split_by="recording", val_fraction=0.0, test_fraction=0.0, on_bad_recording="skip"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = build_datasets(cfg)
    skips = [w for w in caught if issubclass(w.category, SkippedRecordingsWarning)]
    assert len(skips) == 1
    message = str(skips[0].message)
    for name, why in (("flat.csv", "flat"), ("gappy.csv", "NaN gap"), ("gone.wav", "not found")):
        assert name in message and why in message
    assert sorted(bundle.recordings) == ["good1", "good2"] and set(bundle.skipped) == {
        "flat",
        "gappy",
        "gone",
    }


def test_window_longer_than_recording_is_a_data_error(tmp_path):
    cfg = manifest_cfg(tmp_path, [pair(tmp_path, "a", seconds=20.0)])
    rec = prepare_recording(read_manifest(cfg.data.path)[0], cfg.model, cfg.data)
    with pytest.raises(DataError, match="shorter than one window"):
        WindowDataset([rec], cfg.model, 200, {"a": MinMaxNormalizer.fit(rec.eda_us)})


def test_split_seed_fixes_the_held_out_recordings_whatever_the_seed(tmp_path):
    cfg = tiny_experiment(tmp_path, synthetic=dict(n_recordings=9, n_subjects=9, duration_s=30.0, seed=0))
    by_seed = {seed: build_datasets(cfg.model_copy(update={"seed": seed})).splits for seed in range(4)}
    assert len({str(s) for s in by_seed.values()}) > 1  # by default the split follows the seed
    fixed = cfg.model_copy(update={"data": cfg.data.model_copy(update={"split_seed": 0})})
    for seed in range(4):
        assert build_datasets(fixed.model_copy(update={"seed": seed})).splits == by_seed[0]


@pytest.mark.parametrize(
    "memory", [{"eda_memory_seconds": 3}, {"eda_trend_lags": [1, 2, 4]}], ids=["slow", "trend"]
)
def test_windows_carry_the_recordings_eda_memory_and_score_as_the_whole_recording(tmp_path, memory):
    """With model.eda_memory_seconds (or eda_trend_lags), a training window carries the memory of
    its steps computed over the recording from its start; the model on that window gives the
    log-probabilities the whole recording's teacher-forced pass gives there, scored whole or in
    chunks. For the trend, the window's first steps need the levels before the window."""
    from wavenet_lib.evaluate.scoring import model_log_probs
    from wavenet_lib.models.wavenet import Wavenet

    cfg = tiny_experiment(tmp_path, model=tiny_model(**memory, eda_value_input=True))
    bundle = build_datasets(cfg)
    torch.manual_seed(0)
    model = Wavenet(cfg.model).eval()
    torch.nn.init.normal_(model.upsampler.memory.weight)  # it starts at zero
    first = cfg.model.first_full_step
    item = max((bundle.val[i] for i in range(len(bundle.val))), key=lambda it: it["start_step"])
    assert item["start_step"] > first and set(item) >= {"eda_memory"}
    rid, start, W = item["recording_id"], item["start_step"], item["target"].shape[-1]
    full = bundle.load(rid, cfg)
    levels = cfg.model.quantization_levels
    prev = torch.cat([torch.zeros(1, 1), dequantize(quantize(full.eda, levels), levels)[:, :-1]], -1)
    expected_memory = model.memory_of(prev[None])  # START_VALUE (0.0), then the recording's own steps
    memory = item["eda_memory"][None]
    torch.testing.assert_close(memory, expected_memory[..., start : start + W], atol=1e-6, rtol=0)
    with torch.no_grad():
        window = torch.log_softmax(
            model(item["mfcc"][None], item["eda_prev"][None], eda_memory=item["eda_memory"][None]), dim=1
        )
    for chunk in (None, 7):
        whole = model_log_probs(model, full.mfcc, full.eda, chunk_steps=chunk)
        expected = whole[..., start + first : start + W]
        torch.testing.assert_close(window[..., first:], expected, atol=1e-5, rtol=0)
