"""Batch runs: papermill executes the notebooks per config; failures name notebook, cell and error."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from wavenet_lib import pipeline

ROOT = Path(__file__).resolve().parents[2]


def write_notebook(path: Path, *sources: str) -> None:
    params = new_code_cell('config_path = "x"\nrun_dir = "y"')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *(new_code_cell(s) for s in sources)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def fake_notebooks(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "01_ok.ipynb",
        "from pathlib import Path\nPath(run_dir, 'seen.txt').write_text(config_path)",
    )
    write_notebook(
        folder / "02_fails.ipynb",
        "x = 1",
        "raise ValueError('the data folder is empty')",
        "Path(run_dir, 'after_failure.txt').write_text('should not run')",
    )
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", folder)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ("01_ok.ipynb", "02_fails.ipynb"))
    return folder


def config(tmp_path: Path, name: str) -> Path:
    text = (ROOT / "tests" / "notebooks" / "tiny.yaml").read_text().replace("name: tiny", f"name: {name}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_failing_cell_stops_the_config_and_names_notebook_cell_and_error(tmp_path, fake_notebooks, capsys):
    runs = tmp_path / "runs"
    status = pipeline.main(
        [str(config(tmp_path, "first")), str(config(tmp_path, "second")), "--runs-dir", str(runs)]
    )
    err = capsys.readouterr().err
    assert status == 1
    # cell 3 of the executed notebook: papermill inserts the injected-parameters cell after cell 0
    assert (
        "02_fails.ipynb" in err and "cell 3 (In [4])" in err and "ValueError: the data folder is empty" in err
    )
    assert "Traceback" not in err
    run = runs / "first"
    assert (run / "seen.txt").read_text() == str(tmp_path / "first.yaml")  # parameters were injected
    partial = json.loads((run / "02_fails.ipynb").read_text())  # the partly executed notebook is kept
    assert any(o.get("ename") == "ValueError" for c in partial["cells"] for o in c.get("outputs", []))
    assert not (run / "after_failure.txt").exists()
    assert not (runs / "second").exists()  # without --keep-going the next config does not run


def test_keep_going_runs_every_config(tmp_path, fake_notebooks, capsys):
    runs = tmp_path / "runs"
    cfgs = [str(config(tmp_path, "first")), str(config(tmp_path, "second"))]
    assert pipeline.main([*cfgs, "--runs-dir", str(runs), "--keep-going"]) == 1
    assert (runs / "second" / "seen.txt").is_file()
    assert capsys.readouterr().err.count("error:") == 2


def test_overwriting_a_trained_run_clears_the_old_models_figures_first(tmp_path, fake_notebooks, monkeypatch):
    """Per-file figures of a replaced model (the files it ranked first) must not stay beside the
    new model's; figures are only cleared when a trained run is actually replaced."""
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ("01_ok.ipynb",))
    runs, cfg = tmp_path / "runs", config(tmp_path, "fig")
    figures = runs / "fig" / "figures"
    figures.mkdir(parents=True)
    old = figures / "stimulus_attribution_syn-123.png"
    old.write_bytes(b"figure of the old model")
    notes = figures / "notes.txt"
    notes.write_text("not a figure")
    quiet = lambda *a, **k: None  # noqa: E731
    pipeline.run_experiment(cfg, runs, log=quiet, overwrite=True)
    assert old.is_file()  # no trained run in the folder: nothing is replaced
    (runs / "fig" / "best.pt").write_bytes(b"a trained run")
    pipeline.run_experiment(cfg, runs, log=quiet)
    assert old.is_file()  # not asked to overwrite
    pipeline.run_experiment(cfg, runs, log=quiet, overwrite=True)
    assert not old.exists() and notes.is_file()
    assert (runs / "fig" / "seen.txt").is_file()  # the notebooks ran after the clean-up


def test_resume_reaches_the_training_notebook_and_excludes_overwrite(
    tmp_path, fake_notebooks, monkeypatch, capsys
):
    """--resume is passed to the notebooks that take it (02: continue the run's last.pt) and
    cannot be combined with --overwrite, which would replace that run."""
    write_notebook(
        fake_notebooks / "02_train.ipynb",
        "from pathlib import Path\nPath(run_dir, 'flags.txt').write_text(f'{resume} {overwrite}')",
    )
    nb = nbformat.read(fake_notebooks / "02_train.ipynb", as_version=4)
    nb.cells[0].source += "\nresume = False\noverwrite = False"
    nbformat.write(nb, fake_notebooks / "02_train.ipynb")
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ("01_ok.ipynb", "02_train.ipynb"))
    runs, cfg = tmp_path / "runs", config(tmp_path, "again")
    assert pipeline.main([str(cfg), "--runs-dir", str(runs), "--resume"]) == 0
    assert (runs / "again" / "flags.txt").read_text() == "True False"
    assert pipeline.main([str(cfg), "--runs-dir", str(runs)]) == 0
    assert (runs / "again" / "flags.txt").read_text() == "False False"
    with pytest.raises(SystemExit) as stop:
        pipeline.main([str(cfg), "--runs-dir", str(runs), "--resume", "--overwrite"])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pass one of them"):
        pipeline.run_experiment(cfg, runs, log=lambda *a, **k: None, overwrite=True, resume=True)


def test_invalid_config_fails_before_any_notebook(tmp_path, fake_notebooks, capsys):
    bad = config(tmp_path, "bad")
    bad.write_text(bad.read_text().replace("mfcc_hop_size: 100", "mfcc_hop_size: 99"))
    assert pipeline.main([str(bad), "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "spectral_frames_per_eda_step" in err and "config" in err
    assert not (tmp_path / "runs" / "bad").exists()


# What notebook 03 writes to metrics.json: the same library calls on a tiny experiment.
EVENT_LOCKED = {
    "event_locked_peak_latency_s",
    "event_locked_onset_latency_s",
    "event_locked_peak_amplitude_us",
    "event_locked_n_events",
    "event_locked_above_chance_peak_latency_s",
    "event_locked_above_chance_peak_amplitude_us",
}
REALISM = {
    "n_scr",
    "scr_rate_per_min",
    "scr_amplitude_us",
    "scr_rise_time_s",
    "scr_half_recovery_s",
    "step_decrease_p999_us",
    "step_increase_p999_us",
    "drift_us_per_min",
}
VERSUS_REAL = {"diff_log_spectral_distance_db", "two_sample_auc"}
# The two-sample AUC's 95 % bootstrap interval over recordings: pooled rows only.
AUC_INTERVAL = {"two_sample_ci95_low_auc", "two_sample_ci95_high_auc"}
# The pooled event-locked peak as a fraction of the real one, with a 95 % bootstrap interval.
SHARE_OF_REAL = {
    f"{prefix}_of_real{part}_fraction"
    for prefix in ("event_locked", "event_locked_above_chance")
    for part in ("", "_ci95_low", "_ci95_high")
}
FREE_RUNNING = {"rmse_us", "pearson_r", "dtw_us"}
DIRECTIONS = {
    "step_fall_fraction",
    "step_rise_fraction",
    "predicted_step_fall_fraction",
    "predicted_step_rise_fraction",
}
TEACHER_FORCED = {"cross_entropy_nats", "accuracy"}
METRICS_KEYS = {
    "real": EVENT_LOCKED | REALISM | DIRECTIONS,
    "generated": TEACHER_FORCED
    | {"cross_entropy_gap_to_audio_blind_nats"}
    | FREE_RUNNING
    | EVENT_LOCKED
    | SHARE_OF_REAL
    | REALISM
    | VERSUS_REAL
    | DIRECTIONS,
    "audio_blind": TEACHER_FORCED | FREE_RUNNING | EVENT_LOCKED | SHARE_OF_REAL | REALISM | VERSUS_REAL,
    "persistence": TEACHER_FORCED,
}


def test_metrics_json_keys_of_the_evaluation_notebook(tmp_path):
    import torch

    from tests.tiny_configs import tiny_synthetic_experiment
    from wavenet_lib.data.bundle import build_datasets
    from wavenet_lib.evaluate.report import assess, build_report
    from wavenet_lib.evaluate.sweep import realism_sweep
    from wavenet_lib.models.wavenet import Wavenet

    notebook = (ROOT / "notebooks" / "03_evaluation.ipynb").read_text()
    assert "report.to_json(run_dir / 'metrics.json')" in notebook  # the pipeline's metrics.json

    experiment = tiny_synthetic_experiment(tmp_path, "keys", 4, 40)
    torch.manual_seed(0)
    model = Wavenet(experiment.model).eval()
    bundle = build_datasets(experiment)
    assessments = assess(model, experiment, bundle, samples=2)
    path = build_report(assessments).to_json(tmp_path / "metrics.json")
    data = json.loads(path.read_text())
    assert set(data) == {"pooled", "per_recording"}
    assert set(data["per_recording"]) == set(bundle.splits["test"])
    for rows in [data["pooled"], *data["per_recording"].values()]:
        assert list(rows) == list(METRICS_KEYS)
        for source, keys in METRICS_KEYS.items():
            if rows is data["pooled"] and source in ("generated", "audio_blind"):
                keys = keys | AUC_INTERVAL
            extra = {"true_scr_latency_s"} if source == "real" else set()  # synthetic data only
            assert keys <= set(rows[source]) <= keys | extra, source

    sweep = realism_sweep(
        model, experiment, bundle, [{}, {"temperature": 0.5}], samples=1, two_sample=False, progress=False
    )
    assert list(sweep.index) == ["real", "defaults", "temperature=0.5"]
    assert REALISM | VERSUS_REAL | AUC_INTERVAL == set(sweep.columns)
    assert sweep.loc["temperature=0.5", "diff_log_spectral_distance_db"] > 0
