"""The data-layer fields added to DataConfig / SyntheticDataConfig validate and name themselves."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wavenet_lib.configs import DataConfig, SyntheticDataConfig


@pytest.mark.parametrize(
    "field,value",
    [("max_nan_gap_s", -1.0), ("min_eda_range_us", 0.0), ("normalization_margin", -0.1), ("epoch_size", 0)],
)
def test_data_config_fields_validated(field, value):
    with pytest.raises(ValidationError, match=field):
        DataConfig(**{field: value})


@pytest.mark.parametrize(
    "field,value",
    [
        ("evoked_probability", 1.5),
        ("min_event_gap_s", 0.0),
        ("event_selection", "latest"),
        ("spontaneous_per_min", (3.0, 1.0)),
        ("listener", "clicks"),
        ("latency_s", (3.0, 1.0)),
        ("threshold", 0.0),
        ("excerpt_s", (40.0, 10.0)),
        ("pause_s", (-1.0, 2.0)),
        ("gain_db", (-6.0, 20.0)),
        ("level_change_probability", 1.2),
        ("varispeed", 0.5),
    ],
)
def test_synthetic_config_fields_validated(field, value):
    with pytest.raises(ValidationError, match=field):
        SyntheticDataConfig(**{field: value})
