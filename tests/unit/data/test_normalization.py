"""Normalizer: invertible, serializable, and quantization round trip within half a bin."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.data.synthetic import scr_shape
from wavenet_lib.models.quantization import bin_width, dequantize, quantize

from .conftest import eda_trace


def test_maps_margin_range_onto_unit_interval():
    norm = MinMaxNormalizer.fit(np.array([2.0, 4.0, 12.0]), margin=0.1)
    assert norm.normalize(np.array([1.0, 13.0])) == pytest.approx([-1.0, 1.0])
    units = norm.normalize(np.array([2.0, 12.0]))
    assert units == pytest.approx([-1 + 2 / 12, 1 - 2 / 12])


def test_round_trip_numpy_and_torch():
    norm = MinMaxNormalizer.fit(eda_trace(60.0), margin=0.1)
    x = eda_trace(60.0, seed=3)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(x)), x, rtol=1e-12)
    xt = torch.tensor(x, dtype=torch.float64)
    torch.testing.assert_close(norm.denormalize(norm.normalize(xt)), xt)


def test_serializes_as_plain_floats_for_weights_only_checkpoints():
    norm = MinMaxNormalizer.fit(eda_trace(30.0), margin=0.2)
    buffer = io.BytesIO()
    torch.save({"normalizer": norm.to_dict()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert MinMaxNormalizer.from_dict(loaded["normalizer"]) == norm


def test_rejects_degenerate_fits():
    with pytest.raises(ValueError, match="lo < hi"):
        MinMaxNormalizer.fit(np.full(5, 3.0))


@pytest.mark.parametrize("levels", [64, 256])
def test_quantization_round_trip_within_half_a_bin(levels):
    t = np.arange(480) / 4.0
    eda = 6.0 + 0.4 * np.sin(t / 30) + 0.8 * scr_shape(t - 20) + 0.5 * scr_shape(t - 70)
    units = MinMaxNormalizer.fit(eda).normalize(eda)
    assert units.min() > -1 and units.max() < 1
    back = dequantize(quantize(units, levels), levels)
    assert np.abs(back - units).max() <= bin_width(levels) / 2 + 1e-6
    assert np.abs(back - units).max() > 0  # it does quantize
