"""Command line: `wavenet-eda` (or `python -m wavenet_lib`).

    wavenet-eda config show CONFIG          derived architecture of an experiment config
    wavenet-eda config validate CONFIG      OK, or one line per invalid field
    wavenet-eda train CONFIG [--resume | --overwrite] [--run-dir DIR]
    wavenet-eda generate --checkpoint CKPT --audio FILE --out FILE.csv
                         [--samples N] [--seed S] [--temperature T] [--top-p P] [--min-prob E] [--greedy]
                         [--format csv|e4] [--start-time UNIX_S] [--allow-short-audio]
                         [--prime EDA.csv [--prime-rate HZ]]
    wavenet-eda data CONFIG                 prepare the data, fill the MFCC cache, list what is used
    wavenet-eda screen --checkpoint CKPT --audio DIR_OR_FILES... --out ranking.csv
                       [--samples N] [--seed S] [--temperature T] [--top-p P] [--min-prob E]
                       [--rank-by COLUMN] [--plots DIR] [--prime EDA.csv [--prime-rate HZ]]
    wavenet-eda attribute --checkpoint CKPT --audio FILE --out attribution.csv
                          [--eda EDA.csv [--eda-rate HZ]] [--samples N] [--seed S] [--plot FIG.png]

Multi-process training: ``torchrun --nproc_per_node=N -m wavenet_lib train CONFIG``.

User errors (missing file, invalid config, unusable audio, a file that is not our checkpoint,
a busy or already trained run folder, an unwritable output) print ``error: ...`` to stderr and
exit with status 2, without a traceback. A training run that diverges (NaN loss) or cannot
write its files exits with status 1; one stopped by Ctrl-C / SIGTERM saves last.pt, prints how
to resume and exits with 130 / 143.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from wavenet_lib.cli_arguments import add_prime_arguments, add_sampling_arguments, finite_float, seed
from wavenet_lib.configs.describe import describe_config

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
    from wavenet_lib.models.memory import ConfigTooLargeError
    from wavenet_lib.train.checkpoints import CheckpointError
    from wavenet_lib.train.loop import (
        NonFiniteLossError,
        RunFolderError,
        TrainingInterrupted,
        train_experiment,
    )

    cfg = _load_config(args.config)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / cfg.name
    try:
        result = train_experiment(
            cfg, run_dir, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite
        )
    except (FileNotFoundError, CheckpointError, DataError, RunFolderError, ConfigTooLargeError) as exc:
        raise _UserError(str(exc)) from None
    except TrainingInterrupted as exc:
        print(f"error: {str(exc).replace('CONFIG', args.config)}", file=sys.stderr)
        return exc.exit_status
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # a full disk, a folder that became unwritable
        print(f"error: cannot write the run's files in {run_dir}: {_os_reason(exc)}", file=sys.stderr)
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


def _os_reason(exc: OSError) -> str:
    """`[Errno 28] No space left on device: 'x'` → `x: No space left on device`."""
    if exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return exc.strerror or str(exc)


# --- generate ------------------------------------------------------------------------------------
def _check_sampling_arguments(args: argparse.Namespace, greedy: bool) -> None:
    """--samples, --temperature, --top-p, --min-prob, --audio-guidance, --prime-rate / --eda-rate
    and --out of `generate`, `screen` and `attribute` (which has only --samples: its other
    settings are None, the checkpoint config's), checked before any work."""
    from wavenet_lib.atomic_write import check_writable
    from wavenet_lib.generation import check_sampling

    settings = [getattr(args, name, None) for name in ("temperature", "top_p", "min_prob", "audio_guidance")]
    temperature, top_p, min_prob, audio_guidance = settings
    try:
        check_sampling(args.samples, temperature, greedy, top_p, min_prob, audio_guidance)
    except ValueError as exc:
        raise _UserError(f"--{exc}") from None
    for rate, trace in (("prime_rate", "prime"), ("eda_rate", "eda")):  # a rate says how to read a file
        if getattr(args, rate, None) is not None and getattr(args, trace) is None:
            raise _UserError(f"--{rate.replace('_', '-')} needs --{trace}")
    try:
        check_writable(args.out)  # before minutes of sampling, not after
    except OSError as exc:
        raise _UserError(f"--out: {exc}") from None


def _cmd_generate(args: argparse.Namespace) -> int:
    from wavenet_lib.errors import DataError
    from wavenet_lib.generation import generate_from_audio, write_e4_csv, write_eda_csv
    from wavenet_lib.train.checkpoints import CheckpointError
    from wavenet_lib.train.loop import select_device

    _check_sampling_arguments(args, args.greedy)
    start_time = _e4_start_time(args)
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
            min_prob=args.min_prob,
            audio_guidance=args.audio_guidance,
            guidance_reference=args.guidance_reference,
            device=device,
            progress=not args.no_progress,
            allow_short=args.allow_short_audio,
            prime=args.prime,
            prime_rate=args.prime_rate,
        )
    except (FileNotFoundError, CheckpointError, DataError, RuntimeError, ValueError) as exc:
        raise _UserError(str(exc)) from None
    if result.eda_us is None:
        print(
            "warning: the checkpoint stores no EDA normalization; writing model units, not µS",
            file=sys.stderr,
        )
    try:
        out = (
            write_e4_csv(result, args.out, start_time=start_time)
            if args.format == "e4"
            else write_eda_csv(result, args.out)
        )
    except OSError as exc:  # e.g. the disk filled up while writing; the old file is untouched
        print(f"error: cannot write {args.out}: {_os_reason(exc)}", file=sys.stderr)
        return EXIT_FAILED
    steps = result.values.shape[-1]
    print(f"wrote {args.samples} sample(s) x {steps} steps ({steps / result.sample_rate:.1f} s) to {out}")
    return EXIT_OK


def _e4_start_time(args: argparse.Namespace) -> float:
    """--start-time (unix s) for --format e4; default: now."""
    import math
    import time

    if args.start_time is None:
        return time.time()
    if args.format != "e4":
        raise _UserError("--start-time is written by --format e4 only")
    if not (math.isfinite(args.start_time) and args.start_time >= 0):
        raise _UserError(f"--start-time must be a unix time in seconds (>= 0), got {args.start_time}")
    return float(args.start_time)


# --- data ----------------------------------------------------------------------------------------
def _cmd_data(args: argparse.Namespace) -> int:
    import warnings

    from wavenet_lib.data.bundle import build_datasets
    from wavenet_lib.errors import DataError, SkippedRecordingsWarning

    cfg = _load_config(args.config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedRecordingsWarning)  # listed below, one line each
            bundle = build_datasets(cfg)
    except DataError as exc:
        raise _UserError(str(exc)) from None
    table = bundle.summary()
    used, left = table[table.status == "used"], table[table.status != "used"]
    print(f"manifest: {bundle.manifest_path.resolve()}")
    print(f"MFCC cache: {Path(cfg.data.cache_dir).resolve()}")
    width = max([len(r) for r in table.recording_id] + [1])
    for r in used.itertuples():
        print(f"used      {r.recording_id:<{width}}  {r.split:<5}  {r.duration_s:8.2f} s  crop: {r.crop}")
    for r in left.itertuples():
        print(f"left out  {r.recording_id:<{width}}  {' '.join(str(r.reason).split())}")
    splits = ", ".join(f"{k} {len(v)}" for k, v in bundle.splits.items())
    print(
        f"{len(used)} recording(s) used ({splits}; {used.duration_s.sum() / 60:.1f} min), "
        f"{len(left)} left out"
    )
    return EXIT_OK


# --- screen --------------------------------------------------------------------------------------
def _cmd_screen(args: argparse.Namespace) -> int:
    from wavenet_lib.errors import DataError
    from wavenet_lib.screening import samples_for_reliability, screen_stimuli, write_ranking
    from wavenet_lib.train.checkpoints import CheckpointError
    from wavenet_lib.train.loop import select_device

    _check_sampling_arguments(args, False)
    try:
        device = select_device(args.device)
        result = screen_stimuli(
            args.checkpoint,
            args.audio,
            samples=args.samples,
            seed=args.seed,
            prime=args.prime,
            prime_rate=args.prime_rate,
            temperature=args.temperature,
            top_p=args.top_p,
            min_prob=args.min_prob,
            audio_guidance=args.audio_guidance,
            guidance_reference=args.guidance_reference,
            rank_by=args.rank_by,
            device=device,
            progress=not args.no_progress,
            reference=args.reference,
        )
    except (FileNotFoundError, CheckpointError, DataError, ValueError) as exc:
        raise _UserError(str(exc)) from None
    for path, reason in result.skipped:
        print(f"warning: skipped {path}: {reason}", file=sys.stderr)
    if result.ranking.empty:
        raise _UserError(f"none of the {len(result.skipped)} audio file(s) could be screened (see warnings)")
    out = write_ranking(result, args.out)
    if args.plots:
        _screen_plots(result, Path(args.plots))
    best = result.ranking.iloc[0]
    print(
        f"screened {len(result.ranking)} file(s) x {args.samples} sample(s) "
        f"({len(result.skipped)} skipped); ranking in {out}, by {result.rank_by}; top: {best['file']} "
        f"({result.rank_by} {best[result.rank_by]:.3g}; {best['scr_per_min']:.2f} SCR/min)"
    )
    if math.isfinite(result.reliability):
        needed = samples_for_reliability(result.reliability, args.samples, 0.9)
        advice = f"0.9 needs ~{needed}" if needed else "no number of samples is predicted to reach 0.9"
        print(
            f"ranking reliability (split-half, Spearman-Brown): {result.reliability:.2f} with "
            f"{args.samples} samples per file; {advice}"
        )
    return EXIT_OK


def _screen_plots(result, folder: Path) -> None:
    from wavenet_lib.evaluate.stimulus_plots import plot_screened_file

    folder.mkdir(parents=True, exist_ok=True)
    for row in result.ranking.itertuples():
        generated = result.generated[row.file]
        fig = plot_screened_file(
            generated.values[:, 0], generated.sample_rate, row.file, result.config,
            title=f"#{row.rank} {Path(row.file).name}: {row.scr_per_min:.2f} SCR/min",
        )  # fmt: skip
        fig.savefig(folder / f"{row.rank:03d}_{Path(row.file).stem}.png", dpi=100, bbox_inches="tight")
    print(f"wrote {len(result.ranking)} figure(s) to {folder}")


# --- attribute -----------------------------------------------------------------------------------
def _cmd_attribute(args: argparse.Namespace) -> int:
    from wavenet_lib.attribute_file import attribute_file, write_attribution_csv
    from wavenet_lib.errors import DataError
    from wavenet_lib.train.checkpoints import CheckpointError
    from wavenet_lib.train.loop import select_device

    _check_sampling_arguments(args, False)
    try:
        device = select_device(args.device)
        result = attribute_file(
            args.checkpoint, args.audio, eda=args.eda, eda_rate=args.eda_rate, samples=args.samples,
            seed=args.seed, device=device, baseline=args.baseline,
        )  # fmt: skip
    except (FileNotFoundError, CheckpointError, DataError, ValueError) as exc:
        raise _UserError(str(exc)) from None
    out = write_attribution_csv(result, args.out)
    used = "the recorded EDA" if result.recorded else f"{result.attribution.n_histories} generated histories"
    if args.plot:
        from wavenet_lib.evaluate.stimulus_plots import plot_stimulus_attribution

        fig = plot_stimulus_attribution(
            result.audio_path, result.config, result.attribution, eda_us=result.history_us,
            title=f"{result.audio_path.name}: attribution with {used}",
        )  # fmt: skip
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110, bbox_inches="tight")
    unit = "µS" if result.attribution.unit == "us" else "model units"
    top = ", ".join(f"{t:.2f} s ({v:+.3g})" for t, v in result.top_moments(3))
    print(
        f"attributed {result.audio_path.name} ({result.attribution.step_attribution.size} steps) with "
        f"{used}; "
        f"{out}; the audio adds {result.attribution.total:+.3g} {unit} of predicted EDA over the "
        f"{result.attribution.baseline} baseline; "
        f"strongest moments: {top}"
    )
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, status 2 (argparse's usual status)
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
    how = train.add_mutually_exclusive_group()
    how.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    how.add_argument(
        "--overwrite", action="store_true", help="replace the trained run in RUN_DIR (default: refuse)"
    )
    train.add_argument("--run-dir", help="output folder (default: runs/<experiment name>)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    gen = sub.add_parser("generate", help="generate EDA (µS) for an audio file")
    gen.add_argument("--checkpoint", required=True, help="a checkpoint (e.g. runs/NAME/best.pt)")
    gen.add_argument("--audio", required=True, help="audio file (wav, flac, ogg, mp3)")
    gen.add_argument("--out", required=True, help="output CSV")
    gen.add_argument("--samples", type=int, default=1, help="independent samples (one column each)")
    gen.add_argument("--seed", type=seed, default=0, help="sampling seed (0 <= seed < 2^32)")
    add_sampling_arguments(gen, greedy=True)
    gen.add_argument("--greedy", action="store_true", help="most likely level each step")
    gen.add_argument(
        "--format", choices=("csv", "e4"), default="csv", help="csv: time + values; e4: Empatica EDA.csv"
    )
    gen.add_argument(
        "--start-time",
        type=float,
        default=None,
        help="--format e4: unix time (s) of the first sample written in row 1 (default: now)",
    )
    gen.add_argument(
        "--allow-short-audio",
        action="store_true",
        help="generate even when the audio is shorter than the model's receptive field (partial context)",
    )
    gen.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_prime_arguments(gen)
    gen.set_defaults(func=_cmd_generate)

    data = sub.add_parser(
        "data", help="prepare a config's data (fills the MFCC cache); list what is used and left out"
    )
    data.add_argument("config", help="experiment YAML")
    data.set_defaults(func=_cmd_data)
    screen = sub.add_parser("screen", help="rank audio files by the EDA responses they evoke")
    screen.add_argument("--checkpoint", required=True, help="a checkpoint (e.g. runs/NAME/best.pt)")
    screen.add_argument("--audio", required=True, nargs="+", help="audio files and/or folders of them")
    screen.add_argument("--out", required=True, help="ranking CSV (one row per file, best first)")
    screen.add_argument("--samples", type=int, default=16, help="generated samples per file")
    screen.add_argument("--seed", type=seed, default=0, help="sampling seed (the same for every file)")
    add_sampling_arguments(screen, greedy=False)
    screen.add_argument(
        "--rank-by",
        help="the ranking's column to sort by, e.g. scr_per_min (default: evoked_rise_us_per_min)",
    )
    screen.add_argument(
        "--reference",
        choices=("clip_mean", "silent"),  # wavenet_lib.evoked.REFERENCES (no torch import here)
        default="clip_mean",
        help="what the evoked rise compares each file against: its own mean sound held constant "
        "(default) or silence",
    )
    screen.add_argument("--plots", help="folder for one figure per file (quantile bands over loudness)")
    screen.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    screen.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_prime_arguments(screen)
    screen.set_defaults(func=_cmd_screen)

    attribute = sub.add_parser("attribute", help="which moments of a sound drive the predicted EDA")
    attribute.add_argument("--checkpoint", required=True, help="a checkpoint (e.g. runs/NAME/best.pt)")
    attribute.add_argument("--audio", required=True, help="audio file (wav, flac, ogg, mp3)")
    attribute.add_argument("--out", required=True, help="CSV: time_s and the attribution per EDA step")
    attribute.add_argument(
        "--eda",
        help="a listener's EDA recorded during the sound, starting with it (E4 EDA.csv, or CSV with a "
        "time column; any rate); default: average over generated traces",
    )
    attribute.add_argument(
        "--eda-rate", type=finite_float, help="the EDA file's rate (Hz) when it has no time column"
    )
    attribute.add_argument("--samples", type=int, default=8, help="generated histories without --eda")
    attribute.add_argument("--seed", type=seed, default=0, help="sampling seed of the generated histories")
    attribute.add_argument(
        "--baseline",
        choices=("recent_past", "silent", "clip_mean"),  # wavenet_lib.attribution.BASELINES
        default="recent_past",
        help="what each moment is compared with: the 2 s before it (default), silence, or the "
        "clip's mean sound",
    )
    attribute.add_argument(
        "--plot", help="figure: waveform, spectrogram, attribution and the EDA on one time axis"
    )
    attribute.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    attribute.set_defaults(func=_cmd_attribute)
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
