"""`data.event_oversampling`: windows that hold an SCR onset are drawn more often, and their
loss weights give back the uniform draw's expectation."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from wavenet_lib.configs import DataConfig
from wavenet_lib.data.bundle import build_datasets
from wavenet_lib.data.windows import scr_onset_steps

from .conftest import EDA_SR, manifest_cfg, pair

ONSETS = {"a": [60, 200], "b": [130]}  # SCR onsets (steps at 4 Hz) of two 80 s recordings
SECONDS = 80.0


def scr_trace(onsets: list[int], seconds: float = SECONDS) -> np.ndarray:
    """A flat 4 µS level with 0.4 µS SCRs (1 s rise) starting at `onsets`."""
    t = np.arange(int(seconds * EDA_SR)) / EDA_SR
    x = np.full(t.shape, 4.0)
    for onset in onsets:
        dt = np.clip(t - onset / EDA_SR, 0, None)
        x += 0.4 * (1 - np.exp(-dt / 0.6)) * np.exp(-dt / 4.0)
    return x


def holds_onset(recording_id: str, start: int, first: int, window: int) -> bool:
    """Whether the scored steps [start + first, start + window) hold one of the recording's onsets."""
    return any(start + first <= o < start + window for o in ONSETS[recording_id])


def rows_of(tmp, subject=None) -> list[dict]:
    return [
        pair(tmp, name, SECONDS, eda=scr_trace(onsets), subject_id=subject or name)
        for name, onsets in ONSETS.items()
    ]


def test_scr_onset_steps_finds_the_known_onsets():
    (found,) = scr_onset_steps(scr_trace(ONSETS["a"])[None], EDA_SR)
    assert len(found) == 2 and np.all(np.abs(found - np.array(ONSETS["a"])) <= 1)
    (none,) = scr_onset_steps(np.full((1, 320), 4.0), EDA_SR)
    assert none.size == 0


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oversampling")
    rows = rows_of(tmp, subject="s")

    def build(k: float):
        cfg = manifest_cfg(tmp, rows, val_fraction=0.0, test_fraction=0.0, split_by="recording",
                                epoch_size=6000, event_oversampling=k, target_steps=32)  # fmt: skip
        return build_datasets(cfg).train

    return build(1.0), build(4.0)


def test_windows_holding_an_onset_are_drawn_k_times_as_often_and_weighted_back(datasets):
    uniform, over = datasets
    first, window = over.window - over.target_steps, over.window
    expected = np.concatenate(
        [
            [holds_onset(rec.recording_id, s, first, window) for s in range(rec.n_steps - window + 1)]
            for rec in over.recordings
        ]
    )
    found = np.concatenate([over._eventful_starts(rec) for rec in over.recordings])
    assert np.array_equal(found, expected)
    p = float(expected.mean())
    assert 0.1 < p < 0.6
    items = [over[i] for i in range(len(over))]
    eventful = np.array([holds_onset(it["recording_id"], it["start_step"], first, window) for it in items])
    weights = np.array([float(it["loss_weight"]) for it in items])
    share = 4 * p / (4 * p + 1 - p)
    assert abs(eventful.mean() - share) < 0.03  # drawn k times as often
    mean_weight = 4 * p + 1 - p
    np.testing.assert_allclose(weights[eventful], mean_weight / 4, rtol=1e-6)
    np.testing.assert_allclose(weights[~eventful], mean_weight, rtol=1e-6)
    assert abs(np.mean(weights * eventful) - p) < 0.03  # the weighted draw has the uniform expectation
    assert abs(np.mean(weights) - 1.0) < 0.05
    # uniform: no weights, and the onset-holding windows come at their own share
    assert "loss_weight" not in uniform[0]
    starts = [(uniform[i]["recording_id"], uniform[i]["start_step"]) for i in range(len(uniform))]
    plain = np.mean([holds_onset(r, s, first, window) for r, s in starts])
    assert abs(plain - p) < 0.03


def test_strided_windows_are_never_weighted(tmp_path):
    cfg = manifest_cfg(
        tmp_path, rows_of(tmp_path), val_fraction=0.5, test_fraction=0.0, split_by="recording",
        event_oversampling=4.0,
    )  # fmt: skip
    bundle = build_datasets(cfg)
    assert "loss_weight" in bundle.train[0] and "loss_weight" not in bundle.val[0]


@pytest.mark.parametrize("bad", [0.5, 0.0, 101.0])
def test_event_oversampling_below_one_or_huge_is_an_error_naming_the_field(bad):
    with pytest.raises(ValidationError, match="event_oversampling"):
        DataConfig(event_oversampling=bad)
