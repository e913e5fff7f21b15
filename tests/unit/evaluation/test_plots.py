"""Every figure builds, has the expected panels and saves to PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tests.tiny_configs import tiny_model
from wavenet_lib.configs import WavenetConfig
from wavenet_lib.evaluate import plots
from wavenet_lib.evaluate.event_locked import event_locked_response

RATE = 4
rng = np.random.default_rng(0)
REAL = 5 + np.cumsum(rng.normal(0, 0.02, 240))
GEN = REAL + np.cumsum(rng.normal(0, 0.02, (6, 240)), axis=1)
EVENTS = [10.2, 25.0, 41.7]


def figures():
    response = event_locked_response(REAL, RATE, EVENTS)
    stats = pd.DataFrame(
        {
            "source": ["real"] * 3 + ["generated"] * 3,
            "scr_rate_per_min": rng.uniform(1, 3, 6),
            "mean_amplitude_us": rng.uniform(0.1, 1, 6),
            "mean_rise_time_s": rng.uniform(1, 3, 6),
            "mean_recovery_time_s": [1.0, np.nan, 2.0, 3.0, 2.5, 1.5],
        }
    )
    history = pd.DataFrame(
        {
            "step": np.arange(0, 50, 10),
            "train_loss": [3, 2.5, 2, 1.8, 1.7],
            "val_loss": [np.nan, 2.6, np.nan, 2.0, 1.9],
        }
    )
    cfg = WavenetConfig(**tiny_model())  # 200 frames of context, cap 64: a multi-stack model
    return {
        "real_vs_generated": (
            plots.plot_real_vs_generated(REAL, GEN, RATE, loudness=rng.uniform(size=600), events_s=EVENTS),
            2,
        ),
        "real_vs_generated_no_audio": (plots.plot_real_vs_generated(REAL, GEN[0], RATE), 1),
        "quantile_bands": (plots.plot_quantile_bands(GEN, RATE, real_us=REAL, events_s=EVENTS), 1),
        "event_locked": (plots.plot_event_locked({"real": response, "generated": response}), 1),
        "scr_distributions": (plots.plot_scr_distributions(stats), 4),
        "training_curves": (plots.plot_training_curves(history, reference_lines={"persistence": 2.2}), 1),
        "receptive_field": (plots.plot_receptive_field(cfg), 2),
    }


@pytest.fixture(scope="module")
def built():
    return figures()


@pytest.mark.parametrize(
    "name",
    [
        "real_vs_generated",
        "real_vs_generated_no_audio",
        "quantile_bands",
        "event_locked",
        "scr_distributions",
        "training_curves",
        "receptive_field",
    ],
)
def test_figure_has_axes_and_saves(built, name, tmp_path):
    fig, n_axes = built[name]
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=40)
    assert path.stat().st_size > 1000
