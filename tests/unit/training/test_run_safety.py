"""Never lose a run: run-folder lock and overwrite guard, interrupts, NaN validation, damaged
checkpoints, data fingerprints, memory limits, temp-file cleanup."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zipfile
from types import SimpleNamespace

import pytest
import torch

import wavenet_lib.train.loop as loop
from tests.unit.training.helpers import WindowDataset, assert_same_weights, datasets, tiny_experiment
from wavenet_lib.configs import TrainConfig
from wavenet_lib.data.manifest import ManifestRow
from wavenet_lib.data.normalization import MinMaxNormalizer
from wavenet_lib.models.memory import ConfigTooLargeError, check_fits, training_memory
from wavenet_lib.train.checkpoints import CheckpointError, load_model, read_checkpoint
from wavenet_lib.train.distributed import DistEnv
from wavenet_lib.train.fingerprint import data_fingerprint
from wavenet_lib.train.interrupts import StopSignals, TrainingInterrupted
from wavenet_lib.train.loop import NonFiniteLossError, RunFolderError, train

DROPOUT = {"dropout": 0.2}


def run(cfg, run_dir, **kw):
    return train(cfg, *datasets(cfg), run_dir, progress=False, **kw)


# --- the run folder -----------------------------------------------------------------------------
def test_a_trained_run_folder_is_never_overwritten_without_asking(tmp_path):
    cfg = tiny_experiment(max_steps=2, warmup_steps=1)
    run(cfg, tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(RunFolderError, match=r"already holds a trained run \(last\.pt, best\.pt\).*--resume"):
        run(tiny_experiment(max_steps=3, warmup_steps=1, seed=5), tmp_path)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not (tmp_path / ".lock").exists()
    (tmp_path / "metrics.json").write_text("{}")  # notebook 03's report on the old model
    replaced = run(tiny_experiment(max_steps=3, warmup_steps=1, seed=5), tmp_path, overwrite=True)
    assert replaced.step == 3 and torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 3
    assert [r["step"] for r in replaced.history] == [1, 2, 3]  # the old history is gone
    assert not (tmp_path / "metrics.json").exists()


def test_resuming_a_finished_run_trains_nothing_and_keeps_its_checkpoints(tmp_path):
    """`make run RUN_FLAGS=--resume` evaluates a trained run again: training goes no further and
    leaves its checkpoints, history and metrics as they were."""
    cfg = tiny_experiment(max_steps=3, warmup_steps=1, val_every=1)
    first = run(cfg, tmp_path)
    (tmp_path / "metrics.json").write_text('{"pooled": {}}')
    files = {name: (tmp_path / name).read_bytes() for name in ("last.pt", "best.pt", "metrics_history.csv")}
    again = run(cfg, tmp_path, resume=True)
    assert again.step == first.step == 3
    assert {name: (tmp_path / name).read_bytes() for name in files} == files
    assert (tmp_path / "metrics.json").read_text() == '{"pooled": {}}'
    assert_same_weights(again.model.state_dict(), first.model.state_dict())


def _lock(run_dir, pid, host=None, started=1_700_000_000.0):
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host or socket.gethostname(), "started": started}
    (run_dir / ".lock").write_text(json.dumps(holder))


def test_a_second_process_is_stopped_by_the_lock_naming_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path, holder.pid)
        with pytest.raises(RunFolderError) as info:
            run(tiny_experiment(max_steps=2, warmup_steps=1), tmp_path)
    finally:
        holder.kill()
        holder.wait()
    message = str(info.value)
    assert f"in use by another training run: pid {holder.pid} on host {socket.gethostname()}" in message
    assert time.strftime("%Y-%m-%d", time.localtime(1_700_000_000.0)) in message
    assert not (tmp_path / "last.pt").exists()
    assert (tmp_path / ".lock").exists()  # the holder's lock is left alone


def test_a_lock_on_another_host_is_never_taken_over(tmp_path):
    _lock(tmp_path, 1, host="other-machine")
    with pytest.raises(RunFolderError, match="pid 1 on host other-machine"):
        run(tiny_experiment(max_steps=2, warmup_steps=1), tmp_path)


def test_the_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock(tmp_path, dead.pid)
    with pytest.warns(UserWarning, match=f"stale lock of pid {dead.pid}"):
        result = run(tiny_experiment(max_steps=2, warmup_steps=1), tmp_path)
    assert result.step == 2 and not (tmp_path / ".lock").exists()


def test_temp_files_of_a_killed_write_are_removed_at_the_next_start(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    leftover = tmp_path / ".last.pt.k3j2h1.tmp"
    leftover.write_bytes(b"PK half a checkpoint")
    keep = tmp_path / "notes.tmp"  # not one of ours
    keep.write_text("mine")
    run(tiny_experiment(max_steps=2, warmup_steps=1), tmp_path)
    assert not leftover.exists() and keep.exists()


# --- non-finite values ----------------------------------------------------------------------------
def test_a_nan_validation_loss_is_never_best_and_stops_the_run(tmp_path):
    cfg = tiny_experiment(max_steps=6, val_every=3, checkpoint_every=2)
    train_set, _ = datasets(cfg)
    nan_val = WindowDataset(cfg, 8, seed=2, nan_after=0)
    with pytest.raises(NonFiniteLossError, match=r"step 3: the validation loss is nan") as info:
        train(cfg, train_set, nan_val, tmp_path, progress=False)
    assert info.value.last_checkpoint == tmp_path / "last.pt"
    assert not (tmp_path / "best.pt").exists()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2


def test_last_checkpoint_is_at_most_checkpoint_every_minutes_old(tmp_path):
    # checkpoint_every (steps) never fires; the time limit (a few microseconds) fires every step,
    # so the NaN at step 6 finds last.pt at step 5.
    cfg = tiny_experiment(max_steps=8, checkpoint_every=1000, checkpoint_every_minutes=1e-7, val_every=100)
    bad = WindowDataset(cfg, 16, seed=1, nan_after=20)
    with pytest.raises(NonFiniteLossError, match="step 6"):
        train(cfg, bad, None, tmp_path, progress=False)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 5


def test_default_checkpoint_interval_is_a_few_minutes():
    assert TrainConfig().checkpoint_every_minutes == 5.0


# --- interrupts ----------------------------------------------------------------------------------
class SignalAt(WindowDataset):
    """Sends `signum` to this process when window number `at` is fetched (num_workers=0)."""

    def __init__(self, cfg, n, seed, signum, at):
        super().__init__(cfg, n, seed=seed)
        self.signum, self.at = signum, at

    def __getitem__(self, i):
        item = super().__getitem__(i)
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)
        return item


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_at_the_step_boundary_and_resume_is_exact(tmp_path, signum):
    cfg = tiny_experiment(model=DROPOUT, max_steps=7, checkpoint_every=100)
    full = run(cfg, tmp_path / "full")
    # batch 4, num_workers 0: fetch 10 is inside step 3, so step 3 completes, then it stops.
    interrupted = SignalAt(cfg, 16, 1, signum, at=10)
    handler_before = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, interrupted, datasets(cfg)[1], tmp_path / "run", progress=False)
    assert signal.getsignal(signum) is handler_before  # handlers restored
    exc = info.value
    assert (exc.step, exc.exit_status, exc.signal_name) == (3, 128 + signum, signal.Signals(signum).name)
    assert f"saved {tmp_path / 'run' / 'last.pt'}" in str(exc) and "--resume" in str(exc)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 3
    assert not (tmp_path / "run" / ".lock").exists()
    resumed = run(cfg, tmp_path / "run", resume=True)
    assert resumed.step == 7
    assert_same_weights(full.model.state_dict(), resumed.model.state_dict())
    assert resumed.best_val_loss == full.best_val_loss


def test_stop_signals_poll_reports_a_signal_once_received():
    stop = StopSignals(DistEnv())
    with stop:
        assert stop.poll(False, torch.device("cpu")) == (None, False)
        assert stop.poll(True, torch.device("cpu")) == (None, True)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.poll(False, torch.device("cpu")) == (signal.SIGTERM, True)


# --- damaged checkpoints ---------------------------------------------------------------------------
def _flip_a_weight_byte(path):
    """Flip one bit inside the bytes of the first tensor record, as a bad disk or copy would."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 8)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + 3] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_checkpoint_with_a_flipped_bit_is_refused(tmp_path):
    cfg = tiny_experiment(max_steps=2, warmup_steps=1)
    run(cfg, tmp_path)
    damaged = tmp_path / "best.pt"
    _flip_a_weight_byte(damaged)
    with pytest.raises(CheckpointError, match=r"best\.pt: damaged checkpoint, checksum mismatch in .*data/"):
        read_checkpoint(damaged)
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        load_model(damaged)
    read_checkpoint(tmp_path / "last.pt")  # the undamaged one still loads


# --- data fingerprint ------------------------------------------------------------------------------
def _bundle(tmp_path, scale: float):
    audio = tmp_path / "a.wav"
    if not audio.exists():
        audio.write_bytes(b"RIFF" + bytes(100))
    row = ManifestRow(
        recording_id="r1",
        subject_id="s1",
        audio_path=audio,
        eda_path=tmp_path / "a.csv",
        eda_format="generic",
        eda_sample_rate=4,
    )
    rec = SimpleNamespace(row=row, eda_us=torch.linspace(5.8, 7.5, 40).double().numpy() * scale)
    return SimpleNamespace(splits={"train": ["r1"]}, recordings={"r1": rec}, train=range(10))


def test_data_fingerprint_changes_with_the_data(tmp_path):
    norm = MinMaxNormalizer(5.8, 7.5)
    a = data_fingerprint(_bundle(tmp_path, 1.0), norm)
    assert a == data_fingerprint(_bundle(tmp_path, 1.0), norm)
    assert a["digest"] != data_fingerprint(_bundle(tmp_path, 4.5), norm)["digest"]
    (tmp_path / "a.wav").write_bytes(b"RIFF" + bytes(101))  # the audio file changed
    assert a["digest"] != data_fingerprint(_bundle(tmp_path, 1.0), norm)["digest"]
    assert a["recordings"] == 1 and a["eda_range_us"] == [5.8, 7.5] and a["windows"] == 10


def test_resume_on_changed_data_warns(tmp_path):
    cfg = tiny_experiment(max_steps=4, warmup_steps=1)
    before = {"digest": "aaa", "recordings": 8, "eda_range_us": [5.8, 7.5], "windows": 16}
    run(cfg, tmp_path, stop_after=2, data_fingerprint=before)
    after = {**before, "digest": "bbb", "eda_range_us": [27.5, 32.6]}
    with pytest.warns(UserWarning, match=r"different data .*EDA range \(µS\) 5\.8-7\.5 -> 27\.5-32\.6"):
        run(cfg, tmp_path, resume=True, data_fingerprint=after)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["train_state"]["data_fingerprint"]
    assert saved["digest"] == "bbb"


def test_resume_on_the_same_data_does_not_warn(tmp_path, recwarn):
    cfg = tiny_experiment(max_steps=4, warmup_steps=1)
    same = {"digest": "aaa", "recordings": 8, "eda_range_us": [5.8, 7.5], "windows": 16}
    run(cfg, tmp_path, stop_after=2, data_fingerprint=same)
    run(cfg, tmp_path, resume=True, data_fingerprint=same)
    assert not [w for w in recwarn if "different data" in str(w.message)]


# --- memory --------------------------------------------------------------------------------------
def test_a_config_too_large_for_the_machine_is_refused_before_allocating(tmp_path, monkeypatch):
    cfg = tiny_experiment(batch_size=4)
    monkeypatch.setattr(loop, "available_memory", lambda device: 1024)  # a 1 KiB machine
    monkeypatch.setattr(loop, "_build_model", lambda *a: pytest.fail("allocated a model"))
    with pytest.raises(ConfigTooLargeError, match=r"training tiny needs about .* GiB .*has .* GiB; lower "):
        run(cfg, tmp_path)
    assert not (tmp_path / "last.pt").exists()


def test_memory_message_names_the_fields_that_dominate():
    wide = training_memory(tiny_experiment(model={"hidden_channels": 4096}, batch_size=1))
    with pytest.raises(ConfigTooLargeError, match="lower model.hidden_channels"):
        check_fits(wide, 1024, "training", "here")
    long = training_memory(tiny_experiment(batch_size=100_000))
    with pytest.raises(ConfigTooLargeError, match="lower train.batch_size"):
        check_fits(long, 1024, "training", "here")
    one, two = (training_memory(tiny_experiment(batch_size=b)) for b in (1000, 2000))
    assert two.activations == 2 * one.activations and two.fixed == one.fixed


def test_shared_cache_temp_files_are_removed_only_when_old(tmp_path):
    from wavenet_lib.atomic_write import remove_temp_files

    old, fresh = tmp_path / ".a.npy.x1.tmp", tmp_path / ".b.npy.x2.tmp"
    for p in (old, fresh):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_temp_files(tmp_path, older_than_s=3600) == [old]
    assert fresh.exists() and not old.exists()
