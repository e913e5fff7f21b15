"""Two CPU processes (gloo DDP) follow the same trajectory as one process on the same global batch."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from tests.unit.training.helpers import (
    assert_same_weights,
    datasets,
    ddp_worker,
    free_port,
    load_state,
    tiny_experiment,
)
from wavenet_lib.train.distributed import DistEnv, all_gather_objects, all_reduce_sum, init_distributed
from wavenet_lib.train.loop import train

TRAIN = {"max_steps": 5, "val_every": 2, "checkpoint_every": 5}  # 5 steps cross an epoch boundary


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"ema_decay": 0.5}], ids=["plain", "weight_average"])
def test_two_gloo_processes_match_one_process(tmp_path, extra):
    ddp_dir, out = tmp_path / "ddp", tmp_path / "weights"
    out.mkdir()
    train_kw = TRAIN | extra
    mp.spawn(ddp_worker, args=(2, free_port(), str(ddp_dir), str(out), train_kw), nprocs=2, join=True)
    rank0, rank1 = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert_same_weights(rank0, rank1)  # DDP keeps replicas (and their weight averages) bitwise identical

    cfg = tiny_experiment(**train_kw)
    single = train(cfg, *datasets(cfg), tmp_path / "single", progress=False)
    assert_same_weights(rank0, single.model.state_dict(), atol=1e-5)  # the average, with ema_decay

    # Only rank 0 wrote files, and its checkpoint holds the final weights and every rank's RNG.
    assert sorted(p.name for p in ddp_dir.iterdir()) == [
        "best.pt",
        "config.yaml",
        "last.pt",
        "metrics_history.csv",
    ]
    payload = torch.load(ddp_dir / "last.pt", weights_only=True)
    stored = payload["weight_average"]["model"] if extra else load_state(ddp_dir / "last.pt")
    assert_same_weights(stored, rank0)
    assert len(payload["rng"]) == 2 and payload["train_state"]["world_size"] == 2
    assert payload["train_state"]["best_val_loss"] == pytest.approx(single.best_val_loss, abs=1e-5)


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = init_distributed("cpu")
    assert env == DistEnv() and env.is_main and not env.distributed
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(all_reduce_sum(t, env), torch.tensor([1.0, 2.0]))
    assert all_gather_objects({"a": 1}, env) == [{"a": 1}]


def test_missing_rendezvous_settings_are_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="RANK, MASTER_ADDR|RANK"):
        init_distributed("cpu")


def test_batch_must_split_evenly_over_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    import wavenet_lib.train.loop as training

    monkeypatch.setattr(training, "init_distributed", lambda device_type: DistEnv(rank=0, world_size=3))
    cfg = tiny_experiment()
    with pytest.raises(ValueError, match=r"batch_size \(4\).*\(3\)"):
        train(cfg, *datasets(cfg), tmp_path, progress=False)


@pytest.mark.slow
def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    from tests.unit.training.helpers import ddp_interrupt_worker

    run_dir, out = tmp_path / "ddp", tmp_path / "out"
    out.mkdir()
    # 2 windows per rank per step: rank 1's 5th fetch is in step 3.
    mp.spawn(ddp_interrupt_worker, args=(2, free_port(), str(run_dir), str(out), 5), nprocs=2, join=True)
    stopped = [(out / f"rank{r}.txt").read_text() for r in range(2)]
    assert stopped == ["3", "3"]
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 3
    assert not (run_dir / ".lock").exists()
