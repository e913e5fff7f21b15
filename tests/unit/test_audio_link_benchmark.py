"""The audio-link benchmark's config overrides and table rows (the numbers notebook 05 shows)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from benchmarks.audio_link import apply_overrides, table_row
from wavenet_lib.configs import load_config

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


def pooled(**extra: float) -> dict[str, float]:
    p = {
        "test_cross_entropy": 1.4,
        "audio_blind_cross_entropy": 1.65,
        "persistence_cross_entropy": 2.0,
        "two_sample_auc_generated": 0.8,
        "lsd_generated": 3.4,
    }
    for source, base in (("real", 1.0), ("generated", 0.5), ("audio_blind", 0.1)):
        p[f"event_locked_latency_{source}_s"] = 3.75
        p[f"event_locked_amplitude_{source}"] = 0.15 * base
        for metric in (
            "scr_rate_per_min", "mean_amplitude_us", "mean_rise_time_s", "mean_recovery_time_s",
            "decrease_p999_us", "increase_p999_us",
        ):  # fmt: skip
            p[f"{source}_{metric}"] = base
    return p | extra


def test_overrides_are_applied_and_validated():
    cfg = apply_overrides(load_config(QUICKSTART), ["seed=3", "train.max_steps=100", "model.dropout=0.2"])
    assert (cfg.seed, cfg.train.max_steps, cfg.model.dropout) == (3, 100, 0.2)
    with pytest.raises(ValidationError, match="dropout"):
        apply_overrides(load_config(QUICKSTART), ["model.dropout=1.5"])


def test_table_row_pairs_generated_with_real_and_shows_exposure_bias_when_measured():
    row = table_row(pooled())
    assert row["gain"] == pytest.approx(0.25)
    assert row["EL amplitude real / gen / blind"] == "0.15 / 0.07 / 0.01"
    assert row["SCR/min"] == "0.50 / 1.00"
    assert row["falls real / gen; P(fall) on real / own past"] is None  # runs measured before it
    measured = pooled(
        real_fall_fraction=0.435,
        generated_fall_fraction=0.368,
        real_predicted_fall_fraction=0.412,
        generated_predicted_fall_fraction=0.367,
    )
    assert (
        table_row(measured)["falls real / gen; P(fall) on real / own past"] == "0.435 / 0.368; 0.412 / 0.367"
    )


def test_the_response_share_and_its_interval_come_from_the_report_when_it_has_them():
    from benchmarks.audio_link import response_shares

    key = "event_locked_above_chance_of_real"
    evaluation = {
        "report": {
            "pooled": {
                "generated": {
                    f"{key}_fraction": 0.627,
                    f"{key}_ci95_low_fraction": 0.515,
                    f"{key}_ci95_high_fraction": 0.768,
                }
            }
        }
    }
    column = "response above chance, % of real (95 % CI)"
    assert table_row(pooled() | response_shares(evaluation))[column] == "63 (52–77)"
    assert response_shares({"report": {"pooled": {"generated": {}}}}) == {}
    assert response_shares({}) == {}  # evaluated before the report existed
    assert table_row(pooled())[column] is None


def test_sampling_labels_name_the_knobs_that_are_on():
    from benchmarks.audio_link import _sampling_label

    assert _sampling_label({"temperature": 1.0, "top_p": 0.98}) == "temperature=1, top_p=0.98"
    both = {"temperature": 1.0, "top_p": 0.98, "min_prob": 0.01, "audio_guidance": 0.1}
    assert _sampling_label(both) == "temperature=1, top_p=0.98, min_prob=0.01, audio_guidance=0.1"
    assert _sampling_label({"top_p": 1.0, "min_prob": 0.0, "audio_guidance": 0.0}) == "temperature=1, top_p=1"
    running = {"top_p": 1.0, "audio_guidance": 0.2, "guidance_reference": "running_mean"}
    assert _sampling_label(running) == "temperature=1, top_p=1, audio_guidance=0.2 over running_mean"
    assert _sampling_label({**running, "audio_guidance": 0.0}) == "temperature=1, top_p=1"


def test_validation_evaluations_are_written_beside_the_test_ones():
    from pathlib import Path

    from benchmarks.audio_link import main, result_path

    out = Path("runs/audio_link")
    assert result_path(out, "base") == out / "base.json"
    assert result_path(out, "base", sweep=True) == out / "base_sweep.json"
    assert result_path(out, "base", split="val") == out / "base_val.json"
    assert result_path(out, "base", sweep=True, split="val") == out / "base_val_sweep.json"
    with pytest.raises(SystemExit):  # only the two held-out splits
        main(["configs/quickstart.yaml", "--name", "x", "--split", "train"])


def test_a_row_is_labelled_with_the_sampling_its_evaluation_used():
    from benchmarks.audio_link import _sampling_label, sampling_used

    trained_with = {"sampling": {"temperature": 1.0, "top_p": 0.98, "audio_guidance": 0.1}}
    now = {"temperature": 1.0, "top_p": 0.98, "min_prob": 0.0, "audio_guidance": 0.05}
    evaluated = {"sampling": {}, "sampling_used": now}
    assert _sampling_label(sampling_used(evaluated, trained_with)) == (
        "temperature=1, top_p=0.98, audio_guidance=0.05"
    )
    swept = {"sampling": {"top_p": 0.95}, "sampling_used": now | {"top_p": 0.95}}
    assert "top_p=0.95" in _sampling_label(sampling_used(swept, trained_with))
    # evaluations saved before the setting was recorded: the run's config and their overrides
    old = {"sampling": {"top_p": 0.9}}
    assert _sampling_label(sampling_used(old, trained_with)) == (
        "temperature=1, top_p=0.9, audio_guidance=0.1"
    )


def test_validation_evaluations_are_collected_with_their_runs_config(tmp_path):
    """`--split val` writes `<run>_val[_sweep].json` beside the run folder `<run>`; collecting
    `<run>_val` reads that folder's config (there is no `<run>_val` folder)."""
    import json

    import yaml

    from benchmarks.audio_link import collect, run_folder

    (tmp_path / "base").mkdir()
    config = load_config(QUICKSTART).model_dump(mode="json")
    (tmp_path / "base" / "config.yaml").write_text(yaml.safe_dump(config))
    assert run_folder(tmp_path, "base_val") == tmp_path / "base"
    assert run_folder(tmp_path, "base") == tmp_path / "base"
    assert run_folder(tmp_path, "other_val") == tmp_path / "other_val"  # no run: left as named
    evaluation = {"sampling": {"audio_guidance": 0.2}, "pooled": pooled()}
    (tmp_path / "base_val_sweep.json").write_text(json.dumps({"evaluations": [evaluation]}))
    target = tmp_path / "table.json"
    collect(tmp_path, target, [], ["base_val"])
    (row,) = json.loads(target.read_text())["sampling_sweep"]
    assert row["setting"].startswith("base_val: ") and "audio_guidance=0.2" in row["setting"]


def test_a_row_names_the_listener_its_config_names_else_the_one_its_name_implies():
    from benchmarks.audio_link import _dataset

    causal = {"event_selection": "first"}
    shipped = {"data": {"synthetic": {"listener": "spectral_novelty", **causal}}}
    assert _dataset("quickstart_novelty_val", shipped) == "music, spectral_novelty listener, first events"
    loudness = "music, loudness_rise listener, first events"
    assert _dataset("music_144rec", {"data": {"synthetic": causal}}) == loudness
    assert _dataset("novelty_first", {}) == "music, spectral_novelty listener, strongest events"
    assert _dataset("base", {"data": {"synthetic": None}}) == "clicks in noise (previous quickstart)"
