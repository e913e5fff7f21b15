"""The training loop: determinism, exact resume, NaN stop, schedule, loss mask, early stopping."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from tests.unit.training.helpers import (
    WindowDataset,
    assert_same_weights,
    datasets,
    load_state,
    tiny_experiment,
)
from wavenet_lib.train.loop import (
    NonFiniteLossError,
    WarmupCosine,
    masked_cross_entropy,
    select_device,
    train,
)

DROPOUT = {"dropout": 0.2}  # makes the RNG state matter for resume and determinism


def run(cfg, run_dir, **kw):
    return train(cfg, *datasets(cfg), run_dir, progress=False, **kw)


def record_forward_inputs(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """From now on, a copy of the (mfcc, eda_prev) of every `Wavenet.forward` call, in order."""
    from wavenet_lib.models.wavenet import Wavenet

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = Wavenet.forward

    def spy(self, mfcc, eda_prev, **scored):
        seen.append((mfcc.clone(), eda_prev.clone()))
        return original(self, mfcc, eda_prev, **scored)

    monkeypatch.setattr(Wavenet, "forward", spy)
    return seen


def test_two_identical_cpu_runs_give_identical_weights(tmp_path):
    cfg = tiny_experiment(model=DROPOUT)
    a = run(cfg, tmp_path / "a")
    b = run(cfg, tmp_path / "b")
    assert a.step == b.step == cfg.train.max_steps
    assert_same_weights(a.model.state_dict(), b.model.state_dict())
    c = run(tiny_experiment(model=DROPOUT, seed=1), tmp_path / "c")
    assert any(not torch.equal(a.model.state_dict()[k], v) for k, v in c.model.state_dict().items())


@pytest.mark.parametrize(
    "stop_after,extra",
    [
        (3, {}),
        (4, {}),
        (3, {"history_noise_levels": 2.0}),
        (3, {"scheduled_sampling": 0.5}),
        (3, {"audio_dropout": 0.5}),
        (3, {"ema_decay": 0.9}),
    ],
    ids=["mid_epoch", "epoch_boundary", "history_noise", "scheduled_sampling", "audio_dropout", "ema"],
)
def test_resume_is_exact(tmp_path, stop_after, extra):
    # 16 windows / batch 4 = 4 batches per epoch; 7 steps cross an epoch boundary.
    cfg = tiny_experiment(model=DROPOUT, max_steps=7, **extra)
    full = run(cfg, tmp_path / "full")
    part = run(cfg, tmp_path / "resumed", stop_after=stop_after)
    assert part.step == stop_after
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["step"] == stop_after
    resumed = run(cfg, tmp_path / "resumed", resume=True)
    assert resumed.step == 7
    assert_same_weights(
        load_state(tmp_path / "full" / "last.pt"), load_state(tmp_path / "resumed" / "last.pt")
    )
    assert_same_weights(full.model.state_dict(), resumed.model.state_dict())
    assert resumed.best_val_loss == full.best_val_loss
    steps = [int(r["step"]) for r in resumed.history]
    assert steps == list(range(1, 8))


@pytest.mark.parametrize(
    "memory",
    [
        {"eda_memory_seconds": 3.0},
        {"eda_trend_lags": [1, 2, 4]},
        {"eda_memory_seconds": 3.0, "eda_trend_lags": [2]},
    ],
    ids=["slow", "trend", "both"],
)
def test_a_model_with_eda_memory_trains_on_its_windows_memory_and_resumes_exactly(tmp_path, memory):
    """The windows' EDA memory reaches the model in training (its projection learns) and a
    resumed run ends with the same weights."""
    from wavenet_lib.models.wavenet import Wavenet

    cfg = tiny_experiment(model={**DROPOUT, **memory, "eda_value_input": True}, max_steps=7)
    full = run(cfg, tmp_path / "full")
    torch.manual_seed(cfg.seed)
    start = Wavenet(cfg.model).upsampler.memory.weight
    assert start.shape == full.model.upsampler.memory.weight.shape
    assert not torch.allclose(full.model.upsampler.memory.weight.cpu(), start)
    run(cfg, tmp_path / "resumed", stop_after=3)
    resumed = run(cfg, tmp_path / "resumed", resume=True)
    assert_same_weights(full.model.state_dict(), resumed.model.state_dict())


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run(tiny_experiment(), tmp_path / "empty", resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_experiment(max_steps=8, checkpoint_every=4, log_every=1)
    reference = run(cfg, tmp_path / "ref", stop_after=4)
    # 4 windows per step with num_workers=0: fetches 21.. (step 6) are NaN.
    bad_train = WindowDataset(cfg, 16, seed=1, nan_after=20)
    run_dir = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"step 6: the training loss is nan") as info:
        train(cfg, bad_train, datasets(cfg)[1], run_dir, progress=False)
    assert info.value.last_checkpoint == run_dir / "last.pt"
    saved = torch.load(run_dir / "last.pt", weights_only=True)
    assert saved["step"] == 4
    assert_same_weights(saved["model"], load_state(tmp_path / "ref" / "last.pt"))
    assert reference.step == 4
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "best.pt",
        "config.yaml",
        "last.pt",
        "metrics_history.csv",
    ]
    # Resuming with good data drops history rows after the checkpoint and matches a clean run.
    resumed = run(cfg, run_dir, resume=True)
    clean = run(cfg, tmp_path / "clean")
    assert_same_weights(resumed.model.state_dict(), clean.model.state_dict())
    with (run_dir / "metrics_history.csv").open() as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, 9))


def test_metrics_history_file(tmp_path):
    cfg = tiny_experiment(max_steps=6, val_every=3, log_every=2)
    result = run(cfg, tmp_path)
    with (tmp_path / "metrics_history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["step", "train_loss", "val_loss", "lr", "time"]
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6]
    assert [bool(r["val_loss"]) for r in rows] == [False, True, False, True]
    assert all(math.isfinite(float(r["train_loss"])) and float(r["lr"]) > 0 for r in rows)
    assert result.best_val_loss == pytest.approx(min(float(r["val_loss"]) for r in rows if r["val_loss"]))
    assert result.history[-1]["step"] == 6


def test_training_reduces_loss(tmp_path):
    # The model starts from a persistence prior (its head is initialised to a Laplace over level
    # changes), so the first losses are already low; compare means of the first and last steps.
    cfg = tiny_experiment(max_steps=80, val_every=40, learning_rate=1e-2, warmup_steps=2, log_every=1)
    result = run(cfg, tmp_path)
    losses = [float(h["train_loss"]) for h in result.history]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.15
    assert result.best_val_loss is not None and math.isfinite(result.best_val_loss)


def test_early_stopping(tmp_path):
    # min_delta larger than any possible improvement: the 2nd validation counts as "no better".
    cfg = tiny_experiment(
        max_steps=10, val_every=1, early_stopping_patience=1, early_stopping_min_delta=100.0
    )
    result = run(cfg, tmp_path)
    assert result.stopped_early and result.step == 2
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2
    assert torch.load(tmp_path / "best.pt", weights_only=True)["step"] == 1


def test_best_checkpoint_final_keeps_the_state_after_max_steps(tmp_path):
    """train.best_checkpoint: final: best.pt is the finished run's state, where the default keeps
    the best validation (step 1 here: min_delta 100 lets no later validation count as better);
    an interrupted run writes no best.pt until it finishes."""
    kw = dict(max_steps=6, val_every=1, early_stopping_min_delta=100.0)
    by_validation = run(tiny_experiment(**kw), tmp_path / "validation")
    assert torch.load(tmp_path / "validation" / "best.pt", weights_only=True)["step"] == 1
    assert by_validation.step == 6
    cfg = tiny_experiment(**kw, best_checkpoint="final")
    final = run(cfg, tmp_path / "final")
    assert torch.load(tmp_path / "final" / "best.pt", weights_only=True)["step"] == 6
    assert_same_weights(
        load_state(tmp_path / "final" / "best.pt"), load_state(tmp_path / "final" / "last.pt")
    )
    assert final.best_val_loss is not None  # validation is still scored and logged
    run(cfg, tmp_path / "resumed", stop_after=3)
    assert not (tmp_path / "resumed" / "best.pt").exists()
    run(cfg, tmp_path / "resumed", resume=True)
    assert_same_weights(
        load_state(tmp_path / "resumed" / "best.pt"), load_state(tmp_path / "final" / "best.pt")
    )


def test_best_checkpoint_final_refuses_early_stopping():
    with pytest.raises(ValueError, match="early_stopping_patience must be unset .* best_checkpoint: final"):
        tiny_experiment(best_checkpoint="final", early_stopping_patience=3)


def test_without_validation_best_is_last(tmp_path):
    cfg = tiny_experiment(max_steps=3)
    result = train(cfg, datasets(cfg)[0], None, tmp_path, progress=False)
    assert result.best_val_loss is None
    assert_same_weights(load_state(tmp_path / "best.pt"), load_state(tmp_path / "last.pt"))


def test_training_set_smaller_than_a_batch_is_a_clear_error(tmp_path):
    cfg = tiny_experiment(batch_size=8)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(cfg, WindowDataset(cfg, 5), None, tmp_path, progress=False)


def test_warmup_then_cosine_schedule():
    f = WarmupCosine(warmup=4, total=14, floor=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    values = [f(s) for s in range(4, 15)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)


def test_loss_covers_only_steps_with_a_full_receptive_field():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 16, 1, 10, generator=g)
    target = torch.randint(0, 16, (2, 1, 10), generator=g)
    loss = masked_cross_entropy(logits, target, first_full_step=6)
    changed = target.clone()
    changed[..., :6] = (changed[..., :6] + 3) % 16
    logits2 = logits.clone()
    logits2[..., :6] = 0.0
    assert torch.equal(loss, masked_cross_entropy(logits2, changed, first_full_step=6))
    expected = torch.nn.functional.cross_entropy(logits[..., 6:], target[..., 6:])
    assert torch.allclose(loss, expected)
    with pytest.raises(ValueError, match="first_full_step"):
        masked_cross_entropy(logits, target, first_full_step=10)


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")


def test_history_noise_perturbs_the_past_eda_only(monkeypatch):
    """With `train.history_noise_levels` the model reads a noisy eda_prev (sd in levels), the
    loss still scores the clean targets, and a sd of 0 is the plain step."""
    from wavenet_lib.models.quantization import bin_width
    from wavenet_lib.models.wavenet import Wavenet
    from wavenet_lib.train import step as step_module

    cfg = tiny_experiment(model=DROPOUT)
    batch = next(iter(torch.utils.data.DataLoader(datasets(cfg)[0], batch_size=4)))
    seen = record_forward_inputs(monkeypatch)
    levels = cfg.model.quantization_levels
    for noise in (0.0, 3.0):
        torch.manual_seed(0)
        model = Wavenet(cfg.model)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        step_module.train_step(
            model, batch, opt, sched, first_full_step=cfg.model.first_full_step, grad_clip=None,
            history_noise=noise * bin_width(levels),
        )  # fmt: skip
    (_, clean), (_, noisy) = seen
    assert torch.equal(clean, batch["eda_prev"])
    drift = (noisy - clean) / bin_width(levels)
    assert 2.0 < float(drift.std()) < 4.0 and abs(float(drift.mean())) < 0.5


def test_audio_dropout_silences_that_share_of_the_windows(monkeypatch):
    """`train.audio_dropout`: the dropped windows read the silent input (`silent_mfcc_like` of
    their own MFCC), the others their audio; the batch itself is not changed; the past EDA and
    the targets are untouched."""
    from wavenet_lib.data.features import silent_mfcc_like
    from wavenet_lib.models.wavenet import Wavenet
    from wavenet_lib.train import step as step_module

    cfg = tiny_experiment(model=DROPOUT)
    batch = next(iter(torch.utils.data.DataLoader(datasets(cfg)[0], batch_size=4)))
    before = batch["mfcc"].clone()
    many = before.repeat(50, 1, 1, 1)
    torch.manual_seed(0)
    out = step_module.drop_audio(many, 0.3, cfg.model.num_mfccs)
    silent = silent_mfcc_like(many, cfg.model.num_mfccs)
    dropped = torch.tensor([torch.equal(o, z) for o, z in zip(out, silent, strict=True)])
    kept = torch.tensor([torch.equal(o, m) for o, m in zip(out, many, strict=True)])
    assert bool((dropped | kept).all()) and abs(float(dropped.float().mean()) - 0.3) < 0.1
    torch.manual_seed(0)
    assert torch.equal(step_module.drop_audio(many, 0.3, cfg.model.num_mfccs), out)  # same draws
    seen = record_forward_inputs(monkeypatch)
    model = Wavenet(cfg.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    torch.manual_seed(1)
    expected = step_module.drop_audio(batch["mfcc"], 0.5, cfg.model.num_mfccs)
    torch.manual_seed(1)
    step_module.train_step(
        model, batch, opt, sched, first_full_step=cfg.model.first_full_step, grad_clip=None,
        audio_dropout=0.5,
    )  # fmt: skip
    mfcc_read, prev_read = seen[0]
    assert torch.equal(mfcc_read, expected) and not torch.equal(expected, before)
    assert torch.equal(prev_read, batch["eda_prev"]) and torch.equal(batch["mfcc"], before)


def test_an_audio_blind_model_trains_and_validates_on_the_silent_input_only(monkeypatch):
    """`train.audio_dropout: 1` trains the audio-blind control: every training window reads the
    silent input, and so does its validation (the loop sets `silent_audio` for it, and only for
    it), so that the validation loss and `best.pt`'s choice score the model as it trained."""
    from wavenet_lib.data.features import silent_mfcc_like
    from wavenet_lib.models.wavenet import Wavenet
    from wavenet_lib.train import loop as loop_module
    from wavenet_lib.train import step as step_module

    cfg = tiny_experiment(model=DROPOUT, audio_dropout=1.0)
    train_data, val_data = datasets(cfg)[:2]
    batch = next(iter(torch.utils.data.DataLoader(train_data, batch_size=4)))
    silent = silent_mfcc_like(batch["mfcc"], cfg.model.num_mfccs)
    assert torch.equal(step_module.drop_audio(batch["mfcc"], 1.0, cfg.model.num_mfccs), silent)
    model = Wavenet(cfg.model)
    env = loop_module.DistEnv()
    validate = loop_module._validator(cfg, model, val_data, torch.device("cpu"), env)
    assert validate is not None and validate.keywords["silent_audio"] is True
    half = tiny_experiment(model=DROPOUT, audio_dropout=0.5)
    validate_half = loop_module._validator(half, model, val_data, torch.device("cpu"), env)
    assert validate_half is not None and validate_half.keywords["silent_audio"] is False

    seen = record_forward_inputs(monkeypatch)
    first = cfg.model.first_full_step
    blind = step_module.validation_loss(model, val_data, first, 4, bf16=False, silent_audio=True)
    read = torch.cat([m for m, _ in seen])
    seen.clear()
    heard = step_module.validation_loss(model, val_data, first, 4, bf16=False)
    audio = torch.cat([m for m, _ in seen])
    assert torch.equal(read, silent_mfcc_like(audio, cfg.model.num_mfccs))  # each window's own silence
    assert not torch.equal(read, audio) and blind != pytest.approx(heard, abs=1e-6)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_scheduled_sampling_swaps_that_share_of_the_past_for_the_models_own_draws(share, monkeypatch):
    """`own_samples`: where the coin says so, the value of step t-1 read at step t is the model's
    draw for step t-1 (here a model sure of one level), elsewhere the real value; step 0's stays."""
    from wavenet_lib.models.quantization import dequantize
    from wavenet_lib.models.wavenet import Wavenet
    from wavenet_lib.train.step import own_samples

    cfg = tiny_experiment(model=DROPOUT)
    levels = cfg.model.quantization_levels
    model = Wavenet(cfg.model).train()

    def sure_of_level_3(self, mfcc, eda_prev, eda_memory=None):
        logits = torch.full((eda_prev.shape[0], levels, *eda_prev.shape[1:]), -1e9)
        logits[:, 3] = 0.0
        return logits

    monkeypatch.setattr(Wavenet, "forward", sure_of_level_3)
    batch = next(iter(torch.utils.data.DataLoader(datasets(cfg)[0], batch_size=4)))
    real = batch["eda_prev"]
    torch.manual_seed(0)
    mixed = own_samples(model, batch["mfcc"], real, share)
    assert model.training  # the sampling pass runs in eval mode and restores the mode
    assert torch.equal(mixed[..., 0], real[..., 0])
    drawn = torch.isclose(mixed[..., 1:], dequantize(torch.tensor(3), levels))
    kept = mixed[..., 1:] == real[..., 1:]
    assert bool((drawn | kept).all())
    assert abs(float(drawn.float().mean()) - share) < 0.15


def test_loss_weights_weight_each_windows_mean_loss():
    """A batch with "loss_weight" (`data.event_oversampling`): the step's loss is the mean over
    windows of weight × the window's mean loss; weights of 1 give the plain step's loss."""
    from wavenet_lib.models.wavenet import Wavenet
    from wavenet_lib.train import step as step_module

    cfg = tiny_experiment()
    batch = next(iter(torch.utils.data.DataLoader(datasets(cfg)[0], batch_size=4)))
    ffs = cfg.model.first_full_step
    torch.manual_seed(0)
    model = Wavenet(cfg.model).eval()  # no dropout: every pass gives the same numbers
    with torch.no_grad():
        per_window = -model(batch["mfcc"], batch["eda_prev"], target=batch["target"], first_step=ffs)
    per_window = per_window.flatten(1).mean(1).double()

    def loss(weights):
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        weighted = dict(batch) if weights is None else {**batch, "loss_weight": torch.tensor(weights)}
        return step_module.train_step(model, weighted, opt, sched, first_full_step=ffs, grad_clip=None).loss

    plain = loss(None)
    assert plain == pytest.approx(float(per_window.mean()), rel=1e-5)
    assert loss([1.0, 1.0, 1.0, 1.0]) == pytest.approx(plain, rel=1e-6)
    weights = [2.0, 0.0, 0.5, 1.5]
    expected = float((per_window * torch.tensor(weights).double()).mean())
    assert loss(weights) == pytest.approx(expected, rel=1e-5)
