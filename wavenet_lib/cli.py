"""Command line: `wavenet-eda` (or `python -m wavenet_lib`).

    wavenet-eda config show CONFIG          derived architecture of an experiment config
    wavenet-eda config validate CONFIG      OK, or one line per invalid field
    wavenet-eda train CONFIG [--resume] [--run-dir DIR]
    wavenet-eda generate --checkpoint CKPT --audio FILE --out FILE.csv
                         [--samples N] [--seed S] [--temperature T] [--top-p P] [--greedy] [--format csv|e4]

Multi-process training: ``torchrun --nproc_per_node=N -m wavenet_lib train CONFIG``.

User errors (missing file, invalid config, unusable audio, a file that is not our checkpoint)
print ``error: ...`` to stderr and exit with status 2, without a traceback. A training run
that diverges (NaN loss) exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "describe_config"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _UserError(Exception):
    """A problem the user can fix; printed as `error: ...` lines, exit status 2."""

    def __init__(self, *lines: str) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def _validation_lines(exc, source: str) -> list[str]:
    """One line per pydantic error: `source: field.path: message`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<top level>"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {loc}: {msg}")
    return lines


def _load_config(path: str):
    from pydantic import ValidationError

    from wavenet_lib.configs import load_config

    try:
        return load_config(path)
    except ValidationError as exc:
        raise _UserError(*_validation_lines(exc, path)) from None
    except (FileNotFoundError, ValueError) as exc:
        raise _UserError(str(exc)) from None


# --- config --------------------------------------------------------------------------------------
def describe_config(cfg) -> list[str]:
    """The derived architecture of an ExperimentConfig, as aligned `label  value` lines."""
    import torch

    from wavenet_lib.models.wavenet import Wavenet

    m = cfg.model
    spf = m.spectral_frames_per_eda_step
    rf, ctx = m.receptive_field_frames, m.context_size_in_frames
    with torch.device("meta"):  # count parameters without allocating them
        n_params = sum(p.numel() for p in Wavenet(m).parameters())
    covered = (
        f"yes: {rf} >= {ctx} frames (+{rf - ctx} frames excess)"
        if rf >= ctx
        else f"NO: {rf} < {ctx} frames (short by {ctx - rf})"
    )
    rows = [
        ("experiment", cfg.name),
        (
            "frames per EDA step",
            f"{spf} = audio_sample_rate / (eda_sample_rate * mfcc_hop_size) "
            f"= {m.audio_sample_rate} / ({m.eda_sample_rate:g} * {m.mfcc_hop_size})",
        ),
        ("audio samples per frame", f"{m.audio_time_steps_per_spectral_frame} (mfcc_hop_size)"),
        (
            "context",
            f"{m.context_size_in_seconds:g} s = {m.context_size_in_eda_steps} EDA steps = {ctx} frames",
        ),
        ("layers per stack", f"{m.layers_per_stack} (dilations 1 .. {2 ** (m.layers_per_stack - 1)})"),
        ("stacks", f"{m.num_stacks} (stack receptive field {m.stack_receptive_field} frames)"),
        ("residual layers", f"{m.num_layers}"),
        (
            "receptive field",
            f"{rf} frames = {m.receptive_field_seconds:.4g} s = {m.receptive_field_eda_steps} EDA steps",
        ),
        ("context covered", covered),
        ("first full step", f"{m.first_full_step}"),
        (
            "training window",
            f"{m.first_full_step + cfg.data.target_steps} EDA steps "
            f"(first_full_step {m.first_full_step} + target_steps {cfg.data.target_steps})",
        ),
        ("quantization levels", f"{m.quantization_levels}"),
        ("parameters", f"{n_params:,} ({n_params})"),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def _cmd_config_show(args: argparse.Namespace) -> int:
    print("\n".join(describe_config(_load_config(args.config))))
    return EXIT_OK


def _cmd_config_validate(args: argparse.Namespace) -> int:
    _load_config(args.config)
    print(f"OK: {args.config}")
    return EXIT_OK


# --- train ---------------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    from wavenet_lib.errors import DataError
    from wavenet_lib.train.checkpoints import CheckpointError
    from wavenet_lib.train.loop import NonFiniteLossError, train_experiment

    cfg = _load_config(args.config)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / cfg.name
    try:
        result = train_experiment(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    except (FileNotFoundError, CheckpointError, DataError) as exc:
        raise _UserError(str(exc)) from None
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if int(os.environ.get("RANK", "0")) == 0:
        best = "n/a" if result.best_val_loss is None else f"{result.best_val_loss:.4f} nats/step"
        stop = " (early stop)" if result.stopped_early else ""
        print(f"trained {result.step} steps{stop}; best val loss {best}")
        print(
            f"checkpoints: {result.last_checkpoint}"
            + (f", {result.best_checkpoint}" if result.best_checkpoint else "")
        )
    return EXIT_OK


# --- generate ------------------------------------------------------------------------------------
def _cmd_generate(args: argparse.Namespace) -> int:
    from wavenet_lib.errors import DataError
    from wavenet_lib.generation import generate_from_audio, write_e4_csv, write_eda_csv
    from wavenet_lib.train.checkpoints import CheckpointError
    from wavenet_lib.train.loop import select_device

    if args.samples < 1:
        raise _UserError(f"--samples must be >= 1, got {args.samples}")
    if not args.greedy and args.temperature is not None and not args.temperature > 0:
        raise _UserError(f"--temperature must be > 0, got {args.temperature} (use --greedy for argmax)")
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise _UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    try:
        device = select_device(args.device)
        result = generate_from_audio(
            args.checkpoint,
            args.audio,
            samples=args.samples,
            seed=args.seed,
            temperature=args.temperature,
            greedy=args.greedy,
            top_p=args.top_p,
            device=device,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, CheckpointError, DataError, RuntimeError) as exc:
        raise _UserError(str(exc)) from None
    if result.eda_us is None:
        print(
            "warning: the checkpoint stores no EDA normalization; writing model units, not µS",
            file=sys.stderr,
        )
    out = write_e4_csv(result, args.out) if args.format == "e4" else write_eda_csv(result, args.out)
    steps = result.values.shape[-1]
    print(f"wrote {args.samples} sample(s) x {steps} steps ({steps / result.sample_rate:.1f} s) to {out}")
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2 (argparse's usual status)
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `wavenet-eda`."""
    parser = _Parser(prog="wavenet-eda", description="Audio → EDA WaveNet: configs, training, generation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    config = sub.add_parser("config", help="inspect an experiment config")
    config_sub = config.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    show = config_sub.add_parser("show", help="print the derived architecture")
    show.add_argument("config", help="experiment YAML")
    show.set_defaults(func=_cmd_config_show)
    validate = config_sub.add_parser("validate", help="check a config; print OK or what is wrong")
    validate.add_argument("config", help="experiment YAML")
    validate.set_defaults(func=_cmd_config_validate)

    train = sub.add_parser("train", help="train a model (use torchrun for several processes)")
    train.add_argument("config", help="experiment YAML")
    train.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    train.add_argument("--run-dir", help="output folder (default: runs/<experiment name>)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    gen = sub.add_parser("generate", help="generate EDA (µS) for an audio file")
    gen.add_argument("--checkpoint", required=True, help="a checkpoint (e.g. runs/NAME/best.pt)")
    gen.add_argument("--audio", required=True, help="audio file (wav, flac, ogg, mp3)")
    gen.add_argument("--out", required=True, help="output CSV")
    gen.add_argument("--samples", type=int, default=1, help="independent samples (one column each)")
    gen.add_argument("--seed", type=int, default=0, help="sampling seed")
    gen.add_argument(
        "--temperature", type=float, default=None, help="softmax temperature (default: the config's sampling)"
    )
    gen.add_argument(
        "--top-p", type=float, default=None, help="nucleus mass in (0, 1] (default: config sampling)"
    )
    gen.add_argument("--greedy", action="store_true", help="most likely level each step")
    gen.add_argument(
        "--format", choices=("csv", "e4"), default="csv", help="csv: time + values; e4: Empatica EDA.csv"
    )
    gen.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=_cmd_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 training failed, 2 user error)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _UserError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
