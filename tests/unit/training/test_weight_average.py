"""The moving average of the weights (`train.ema_decay`): its arithmetic, what the checkpoints
hold, what validation scores and what inference loads."""

from __future__ import annotations

import csv

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from tests.unit.training.helpers import datasets, tiny_experiment
from wavenet_lib.configs import ExperimentConfig
from wavenet_lib.train.checkpoints import load_model, read_checkpoint
from wavenet_lib.train.loop import train, validation_loss
from wavenet_lib.train.weight_average import WeightAverage


def _linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(-value)
    return layer


def test_the_first_update_copies_and_later_ones_move_by_one_minus_decay():
    model = _linear(1.0)
    average = WeightAverage(model, decay=0.75)
    assert average.n_averaged == 0
    average.update(model)  # copies: 1.0
    with torch.no_grad():
        model.weight.fill_(5.0)
    average.update(model)  # 0.75 * 1 + 0.25 * 5 = 2.0
    with torch.no_grad():
        model.weight.fill_(-2.0)
    average.update(model)  # 0.75 * 2 + 0.25 * -2 = 1.0
    assert average.n_averaged == 3
    assert torch.allclose(average.module.weight, torch.full((1, 2), 1.0))
    assert torch.allclose(average.module.bias, torch.full((1,), -1.0))  # never moved: -1 throughout
    assert model.weight[0, 0].item() == -2.0  # the trained model is left as it is


def test_its_state_round_trips_and_holds_plain_values():
    model = _linear(3.0)
    average = WeightAverage(model, decay=0.5)
    average.update(model)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update(model)
    state = average.state_dict()
    assert state["decay"] == 0.5 and state["n_averaged"] == 2
    fresh = WeightAverage(_linear(0.0), decay=0.5)
    fresh.load_state_dict(state)
    assert fresh.n_averaged == 2
    assert torch.equal(fresh.module.weight, average.module.weight)  # 0.5 * 3 + 0.5 * 1 = 2
    assert torch.allclose(fresh.module.weight, torch.full((1, 2), 2.0))


def test_zero_decay_means_no_average_and_the_config_names_a_bad_decay():
    assert WeightAverage.create(_linear(1.0), 0.0) is None
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(_linear(1.0), 1.0)
    with pytest.raises(ValidationError, match="ema_decay"):
        ExperimentConfig.model_validate({"train": {"ema_decay": 1.0}})


def test_a_run_validates_saves_and_loads_the_average(tmp_path):
    cfg = tiny_experiment(max_steps=6, ema_decay=0.8)
    train_data, val_data = datasets(cfg)
    result = train(cfg, train_data, val_data, tmp_path / "run", progress=False)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["weight_average"]["n_averaged"] == 6 and last["weight_average"]["decay"] == 0.8
    raw, averaged = last["model"], last["weight_average"]["model"]
    assert raw.keys() == averaged.keys()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    # the returned model and what inference loads are the average, not the last step's weights
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, averaged[k])
    loaded, _, _ = load_model(tmp_path / "run" / "last.pt")
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, averaged[k])
    # validation scored the average: the logged loss at the last step is the average's loss
    with open(tmp_path / "run" / "metrics_history.csv") as fh:
        logged = [float(r["val_loss"]) for r in csv.DictReader(fh) if r["val_loss"]]
    again = validation_loss(
        loaded, val_data, cfg.model.first_full_step, cfg.train.batch_size, max_batches=cfg.train.val_batches
    )
    assert again == pytest.approx(logged[-1], rel=1e-6)
    trained = load_model(tmp_path / "run" / "last.pt")[0]
    trained.load_state_dict(raw)
    raw_loss = validation_loss(
        trained, val_data, cfg.model.first_full_step, cfg.train.batch_size, max_batches=cfg.train.val_batches
    )
    assert raw_loss != pytest.approx(logged[-1], rel=1e-6)


def test_a_run_without_an_average_keeps_its_trained_weights(tmp_path):
    cfg = tiny_experiment(max_steps=3)
    assert cfg.train.ema_decay == 0.0
    result = train(cfg, *datasets(cfg), tmp_path / "run", progress=False)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert "weight_average" not in last
    loaded, _, _ = load_model(tmp_path / "run" / "last.pt")
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, last["model"][k])
        assert torch.equal(v, result.model.state_dict()[k])
