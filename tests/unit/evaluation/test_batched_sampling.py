"""Several recordings sampled in shared batches get the samples each would get alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_configs import tiny_synthetic_experiment
from wavenet_lib.data.bundle import build_datasets
from wavenet_lib.evaluate.assessment import (
    assess,
    assess_recording,
    sample_eda_units,
    sample_many_eda_units,
)
from wavenet_lib.generation import batch_groups
from wavenet_lib.models.wavenet import Wavenet


def test_batch_groups_keep_order_split_runs_of_one_length_and_balance_sizes():
    assert batch_groups([10, 10, 10, 7, 10], samples=2, max_rows=4) == [[0, 1], [2], [3], [4]]
    assert batch_groups([5] * 5, samples=2, max_rows=4) == [[0, 1], [2, 3], [4]]
    assert batch_groups([5] * 7, samples=1, max_rows=6) == [[0, 1, 2, 3], [4, 5, 6]]
    assert batch_groups([5] * 3, samples=9, max_rows=4) == [[0], [1], [2]]  # too many samples: alone
    assert batch_groups([], samples=2) == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batched")
    sampling = {"top_p": 0.98, "audio_guidance": 0.1}
    experiment = tiny_synthetic_experiment(
        tmp, "batched", 6, 30, seed=1, val_fraction=0.17, sampling=sampling
    )
    torch.manual_seed(0)
    model = Wavenet(experiment.model).eval()
    return model, experiment, build_datasets(experiment)


def test_shared_batches_give_each_recording_its_own_samples(tiny):
    model, experiment, bundle = tiny
    ids = bundle.splits["test"]
    assert len(ids) >= 3
    recs = [bundle.load(r, experiment) for r in ids]
    prime = model.config.first_full_step
    alone = [
        sample_eda_units(model, rec, 3, prime, torch.Generator().manual_seed(i), top_p=0.98)
        for i, rec in enumerate(recs)
    ]
    for max_rows in (3, 6, 256):  # one recording per batch, two, all
        generators = [torch.Generator().manual_seed(i) for i in range(len(recs))]
        together = sample_many_eda_units(model, recs, 3, prime, generators, max_rows=max_rows, top_p=0.98)
        for a, b in zip(alone, together, strict=True):
            assert torch.equal(a, b), max_rows
    assert not torch.equal(alone[0], alone[1])
    with pytest.raises(ValueError, match="one generator per recording: 3 recordings, 1 generators"):
        sample_many_eda_units(model, recs[:3], 3, prime, [torch.Generator()])


def test_assess_in_batches_equals_assess_recording_one_at_a_time(tiny):
    model, experiment, bundle = tiny
    batched = assess(model, experiment, bundle, samples=2, seed=5, max_rows=4)
    assert [a.recording_id for a in batched] == list(bundle.splits["test"])
    for i, a in enumerate(batched):
        single = assess_recording(model, experiment, bundle, a.recording_id, samples=2, seed=5 + i)
        np.testing.assert_array_equal(a.generated_us, single.generated_us)
        np.testing.assert_array_equal(a.audio_blind_us, single.audio_blind_us)


def test_files_in_shared_batches_get_what_generate_from_audio_gives_each(tiny, tmp_path):
    from wavenet_lib.errors import DataError
    from wavenet_lib.generation import generate_from_audio, generate_from_audio_files

    model, experiment, bundle = tiny
    experiment = bundle.feature_config(experiment)
    files = [bundle.recordings[r].row.audio_path for r in bundle.splits["test"]]
    bad = tmp_path / "not_audio.wav"
    bad.write_text("not audio")
    paths = [files[0], bad, *files[1:]]
    kwargs = dict(
        samples=2, seed=4, config=experiment, normalizer=bundle.normalizers[bundle.splits["test"][0]]
    )
    drawn = list(generate_from_audio_files(model, paths, max_rows=4, **kwargs))
    assert [p for p, _ in drawn] == [Path(p) for p in paths]  # in order, the bad file in its place
    assert isinstance(drawn[1][1], DataError)
    for path, result in [drawn[0], *drawn[2:]]:
        alone = generate_from_audio(model, path, progress=False, **kwargs)
        np.testing.assert_array_equal(result.eda_units, alone.eda_units)
        np.testing.assert_array_equal(result.eda_us, alone.eda_us)
    assert not np.array_equal(drawn[0][1].eda_units, drawn[2][1].eda_units)


def test_more_samples_than_a_batch_are_drawn_in_chunks_as_generate_from_audio_does(tiny, monkeypatch):
    import wavenet_lib.generation as generation

    model, experiment, bundle = tiny
    experiment = bundle.feature_config(experiment)
    files = [bundle.recordings[r].row.audio_path for r in bundle.splits["test"]][:2]
    kwargs = dict(
        samples=3, seed=2, config=experiment, normalizer=bundle.normalizers[bundle.splits["test"][0]]
    )
    monkeypatch.setattr(generation, "MAX_SAMPLES_PER_BATCH", 2)  # 3 samples: chunks of 2 and 1
    drawn = dict(generation.generate_from_audio_files(model, files, **kwargs))
    for path in files:
        alone = generation.generate_from_audio(model, path, progress=False, **kwargs)
        np.testing.assert_array_equal(drawn[Path(path)].eda_units, alone.eda_units)
    monkeypatch.setattr(generation, "MAX_SAMPLES_PER_BATCH", 256)
    one_batch = generation.generate_from_audio(model, files[0], progress=False, **kwargs)
    assert not np.array_equal(one_batch.eda_units, drawn[Path(files[0])].eda_units)  # chunking matters


def test_a_bad_prime_file_is_an_error_of_the_call_not_of_each_audio_file(tiny, tmp_path):
    from wavenet_lib.errors import DataError
    from wavenet_lib.generation import generate_from_audio_files

    model, experiment, bundle = tiny
    experiment = bundle.feature_config(experiment)
    files = [bundle.recordings[r].row.audio_path for r in bundle.splits["test"]][:2]
    prime = tmp_path / "gap.csv"
    prime.write_text("time_s,eda_us\n0,5\n0.25,5\n0.5,5\n1.5,5\n")
    normalizer = bundle.normalizers[bundle.splits["test"][0]]
    drawn = generate_from_audio_files(model, files, config=experiment, normalizer=normalizer, prime=prime)
    with pytest.raises(DataError, match="gap.csv.*jumps from 0.5 s to 1.5 s"):
        next(drawn)
