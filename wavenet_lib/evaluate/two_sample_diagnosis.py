"""What tells real EDA windows from generated ones: the classifier two-sample test taken apart.

    groups = feature_group_aucs(real_features, other_features)   # AUC per group: alone, left out
    spread = feature_spread(real_us, other_us, sampling_rate)    # within- vs between-trace spread
    spread = feature_spread_on_tables(real_tables, other_tables)  # the same on computed features

The two-sample AUC (`two_sample.classifier_two_sample_test`) says *whether* a classifier tells
the sources apart, not *by what*. Two views answer that:

- **Feature groups** (`FEATURE_GROUPS`): the window features fall into six groups (the size of
  the steps, the shape of their distribution, their quantiles, their autocorrelation, their
  spectrum, the SCRs). The test is rerun on each group alone and on all features but that group,
  with the same classifier and folds. A group whose removal lowers the AUC carries information
  the others lack; one that alone scores near 0.5 is not where the sources differ.
- **Spread within and between traces** (`feature_spread`): for each feature, the standard
  deviation over the windows of one trace (averaged over traces) and over the traces' means,
  for each source. A person's traces are self-consistent (one gain, one set of SCR time
  constants, one tonic trend) and differ from the next person's. A generator that forgets who
  it is imitating after its receptive field shows the opposite: more spread within a trace
  (SCRs of one trace as varied as those of different people) and less between traces. Ratios
  (other / real) above 1 within and below 1 between say that. Between-trace spread is taken
  over single traces, not over a recording's mean of samples, which averaging would shrink.
- **Output resolution** (`at_output_resolution`, `resolution_aucs`): the model's output is a
  grid of quantization levels over each recording's normalized range (256 levels over a few
  µS: steps of 5–15 nS), coarser than an E4's sensor noise (a few nS at 0.9 nS resolution), and
  the test's 0.01 µS dither does not hide it all. Real traces put on that grid against the raw
  real traces give the AUC the grid alone earns; generated against real on the grid gives the
  AUC left to the dynamics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.evaluate.two_sample import (
    source_window_features,
    trace_window_features,
    two_sample_test_on_features,
)
from wavenet_lib.models.quantization import dequantize, quantize

__all__ = [
    "FEATURE_GROUPS",
    "group_columns",
    "feature_group_aucs",
    "feature_spread",
    "feature_spread_on_tables",
    "at_output_resolution",
    "resolution_aucs",
]

# Each group: the window-feature names it holds (exact names, or prefixes ending in "*").
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "scale": ("log_std_diff", "log_mean_abs_diff", "log_max_rise", "log_max_fall", "log_detrended_range"),
    "shape": ("skew_diff", "kurtosis_diff", "rising_fraction", "log_roughness"),
    "step_quantiles": ("diff_q*",),
    "autocorrelation": ("diff_autocorr_*",),
    "spectrum": ("band_*",),
    "scrs": ("scr_*",),
}


def _in_group(column: str, members: tuple[str, ...]) -> bool:
    return any(column.startswith(m[:-1]) if m.endswith("*") else column == m for m in members)


def group_columns(columns: Sequence[str]) -> dict[str, list[str]]:
    """{group: its columns} for the columns of `window_features`, in `FEATURE_GROUPS` order.

    Raises:
        ValueError: a column belongs to no group (a new window feature must be given one).
    """
    groups = {name: [c for c in columns if _in_group(c, members)] for name, members in FEATURE_GROUPS.items()}
    placed = {c for cols in groups.values() for c in cols}
    missing = [c for c in columns if c not in placed]
    if missing:
        raise ValueError(f"window features in no FEATURE_GROUPS group: {missing}")
    return groups


def feature_group_aucs(
    real: Mapping[str, pd.DataFrame], other: Mapping[str, pd.DataFrame], n_splits: int = 5, seed: int = 0
) -> pd.DataFrame:
    """The two-sample AUC on each feature group alone and on all features but that group.

    Args:
        real, other: {recording_id: `window_features` table (n_windows, F)}, as
            `two_sample_test_on_features` takes them.
        n_splits, seed: the test's folds and classifier seed.

    Returns:
        DataFrame indexed by "all" then the groups, columns n_features, auc_alone (the test on
        the group's features only) and auc_without (on every other feature); "all" has the full
        test's AUC in both.
    """
    columns = list(next((f.columns for f in real.values() if len(f.columns)), []))

    def auc(keep: list[str]) -> float:
        return two_sample_test_on_features(
            {r: f[keep] for r, f in real.items()}, {r: f[keep] for r, f in other.items()}, n_splits, seed
        ).auc

    full = auc(columns)
    rows = {"all": {"n_features": len(columns), "auc_alone": full, "auc_without": full}}
    for name, cols in group_columns(columns).items():
        rest = [c for c in columns if c not in cols]
        rows[name] = {
            "n_features": len(cols),
            "auc_alone": auc(cols) if cols else math.nan,
            "auc_without": auc(rest) if rest else math.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def feature_spread(
    real_us: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    other_us: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    sampling_rate: float,
    window_s: float = 30.0,
    hop_s: float = 15.0,
) -> pd.DataFrame:
    """Per window feature: the sources' means and their spread within and between traces.

    Args:
        real_us, other_us: {recording_id: trace(s)} in µS, (T,), (S, T) or a sequence; every
            trace counts on its own.
        sampling_rate: EDA rate (Hz).
        window_s, hop_s: the windows of `window_features`.

    Returns and raises: see `feature_spread_on_tables`, which this calls on the traces'
    `trace_window_features`.
    """
    return feature_spread_on_tables(
        trace_window_features(real_us, sampling_rate, window_s, hop_s),
        trace_window_features(other_us, sampling_rate, window_s, hop_s),
    )


def feature_spread_on_tables(
    real: Mapping[str, Sequence[pd.DataFrame]], other: Mapping[str, Sequence[pd.DataFrame]]
) -> pd.DataFrame:
    """`feature_spread` on computed features: {recording_id: [a `window_features` table per trace]}
    for each source, as `trace_window_features` returns them (traces without a window are skipped).

    Returns:
        DataFrame indexed by feature (features NaN in every window dropped), columns: group,
        real_mean, other_mean, effect (other − real in pooled window sd), within_sd_real,
        within_sd_other (sd over a trace's windows, mean over traces), between_sd_real,
        between_sd_other (sd of the traces' mean windows), within_ratio and between_ratio
        (other / real).

    Raises:
        ValueError: a source has fewer than two traces with windows (no between-trace spread).
    """
    tables = {
        name: [table for traces in source.values() for table in traces if len(table)]
        for name, source in (("real", real), ("other", other))
    }
    for name, found in tables.items():
        if len(found) < 2:
            raise ValueError(
                f"feature_spread needs at least two {name} traces long enough for a window, got {len(found)}"
            )
    columns = list(tables["real"][0].columns)
    group_of = {c: g for g, cols in group_columns(columns).items() for c in cols}
    rows = {}
    for column in columns:
        per = {name: [t[column].to_numpy(float) for t in found] for name, found in tables.items()}
        pooled = {name: np.concatenate(v) for name, v in per.items()}
        if not all(np.isfinite(v).any() for v in pooled.values()):
            continue
        row: dict[str, float | str] = {"group": group_of[column]}
        for name, values in per.items():
            row[f"{name}_mean"] = float(np.nanmean(pooled[name]))
            within = [np.nanstd(v, ddof=1) for v in values if np.isfinite(v).sum() >= 2]
            means = [np.nanmean(v) for v in values if np.isfinite(v).any()]
            row[f"within_sd_{name}"] = float(np.mean(within)) if within else math.nan
            row[f"between_sd_{name}"] = float(np.std(means, ddof=1)) if len(means) >= 2 else math.nan
        sd = math.sqrt(0.5 * (np.nanvar(pooled["real"]) + np.nanvar(pooled["other"])))
        row["effect"] = (float(row["other_mean"]) - float(row["real_mean"])) / sd if sd > 0 else math.nan
        for kind in ("within", "between"):
            real_sd, other_sd = float(row[f"{kind}_sd_real"]), float(row[f"{kind}_sd_other"])
            row[f"{kind}_ratio"] = other_sd / real_sd if real_sd > 0 else math.nan
        rows[column] = row
    order = ["group", "real_mean", "other_mean", "effect", "within_sd_real", "within_sd_other"]
    order += ["within_ratio", "between_sd_real", "between_sd_other", "between_ratio"]
    return pd.DataFrame.from_dict(rows, orient="index")[order]


def at_output_resolution(trace_us: np.ndarray, normalizer: MinMaxNormalizer, levels: int) -> np.ndarray:
    """A µS trace as the model's output can hold it: normalized by the recording's normalizer,
    put on the `levels` bin centres (`models/quantization.py`), and back to µS."""
    us = np.asarray(trace_us, dtype=np.float64)
    units = normalizer.normalize(us.reshape(1, -1))
    on_grid = dequantize(quantize(units, levels), levels, np.float64)
    return np.asarray(normalizer.denormalize(on_grid), dtype=np.float64).reshape(us.shape)


def resolution_aucs(
    real_us: Mapping[str, np.ndarray],
    other_us: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    normalizers: Mapping[str, MinMaxNormalizer],
    levels: int,
    sampling_rate: float,
    seed: int = 0,
    features: tuple[Mapping[str, pd.DataFrame], Mapping[str, pd.DataFrame]] | None = None,
) -> dict[str, float]:
    """How much of the two-sample AUC the output grid alone explains.

    Args:
        real_us: {recording_id: real trace (T,)} in µS.
        other_us: {recording_id: trace(s)} of the other source (generated), in µS.
        normalizers: {recording_id: the recording's normalizer} (what the model's levels span).
        levels: the model's quantization levels.
        sampling_rate: EDA rate (Hz).
        seed: the classifier's seed.
        features: the real and other sources' `source_window_features` when already computed.

    Returns:
        {"other_vs_real": the usual AUC, "other_vs_real_on_grid": the other source against the
        real traces put on the output grid (`at_output_resolution`), "real_on_grid_vs_real": the
        real traces on the grid against themselves raw: what the grid alone is worth}.
    """
    on_grid = {r: at_output_resolution(np.asarray(x), normalizers[r], levels) for r, x in real_us.items()}
    if features is None:
        features = (
            source_window_features(real_us, sampling_rate),
            source_window_features(other_us, sampling_rate),
        )
    real, other = features
    grid = source_window_features(on_grid, sampling_rate)
    return {
        "other_vs_real": two_sample_test_on_features(real, other, seed=seed).auc,
        "other_vs_real_on_grid": two_sample_test_on_features(grid, other, seed=seed).auc,
        "real_on_grid_vs_real": two_sample_test_on_features(real, grid, seed=seed).auc,
    }
