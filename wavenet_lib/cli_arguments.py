"""The command line's shared argument types and option groups (`wavenet_lib.cli` builds the parser)."""

from __future__ import annotations

import argparse
import math

from wavenet_lib.configs import GUIDANCE_REFERENCES, MAX_AUDIO_GUIDANCE

__all__ = ["finite_float", "seed", "add_sampling_arguments", "add_prime_arguments"]


def finite_float(text: str) -> float:
    """argparse type: a finite float (inf and nan are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def seed(text: str) -> int:
    """argparse type: an integer seed in [0, 2^32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2^32 - 1, got {text}")
    return value


def add_sampling_arguments(parser: argparse.ArgumentParser, greedy: bool) -> None:
    """--temperature, --top-p, --min-prob and --audio-guidance (default: the checkpoint config's
    `sampling`)."""
    parser.add_argument(
        "--temperature",
        type=finite_float,
        default=None,
        help="softmax temperature (>= 0.001"
        + (", or --greedy" if greedy else "")
        + "; default: config sampling)",
    )
    parser.add_argument(
        "--top-p", type=finite_float, default=None, help="nucleus mass in (0, 1] (default: config sampling)"
    )
    parser.add_argument(
        "--min-prob",
        type=finite_float,
        default=None,
        help="drop levels less likely than this, in [0, 1) (default: config sampling)",
    )
    parser.add_argument(
        "--audio-guidance",
        type=finite_float,
        default=None,
        help=f"amplify the audio's effect over the guidance reference by this weight, in "
        f"[0, {MAX_AUDIO_GUIDANCE:g}] (default: config sampling)",
    )
    parser.add_argument(
        "--guidance-reference",
        choices=GUIDANCE_REFERENCES,
        default=None,
        help="what audio guidance compares the audio with: a silent input, or the audio's running "
        "mean since sampling began (default: config sampling)",
    )


def add_prime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prime",
        help="the listener's EDA before the stimulus (E4 EDA.csv, or CSV with a time column; any "
        "rate): samples start from its level and recent history",
    )
    parser.add_argument(
        "--prime-rate", type=finite_float, help="the prime's rate (Hz) when it has no time column"
    )
