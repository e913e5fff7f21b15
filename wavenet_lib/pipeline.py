"""Batch runs: execute the ordered notebooks with papermill, once per experiment config.

    python -m wavenet_lib.pipeline configs/quickstart.yaml [more.yaml ...] [--runs-dir runs]

For each config, notebooks 01 → 02 → 03 → 04 run in order into `<runs-dir>/<experiment name>/`,
each receiving `config_path` and `run_dir` as papermill parameters; the executed notebooks sit
beside the checkpoint, figures and `metrics.json` the notebooks write there. A failing cell
stops that config with a message naming the notebook, the cell and the error, leaves the
partially executed notebook for inspection, and makes the exit status non-zero;
`--keep-going` moves on to the next config.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from wavenet_lib.configs import load_config
from wavenet_lib.train.state import BEST_CHECKPOINT, LAST_CHECKPOINT

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = (
    "01_receptive_field.ipynb",
    "02_training.ipynb",
    "03_evaluation.ipynb",
    "04_stimuli.ipynb",
)

__all__ = ["NOTEBOOKS", "RunFailure", "run_experiment", "main"]


@dataclass
class RunFailure(Exception):
    """One config's run stopped: which notebook, which cell, what error."""

    config: Path
    notebook: str
    message: str

    def __str__(self) -> str:
        return f"{self.config}: {self.notebook}: {self.message}"


def _describe_cell_error(exc: Exception) -> str:
    # PapermillExecutionError carries the cell's index, execution count and the exception.
    cell = getattr(exc, "cell_index", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell {cell}" if cell is not None else "setup"
    exec_count = getattr(exc, "exec_count", None)
    if exec_count is not None:
        where += f" (In [{exec_count}])"
    return f"{where}: {ename}: {evalue}"


def run_experiment(
    config_path: str | Path,
    runs_dir: str | Path = "runs",
    notebooks: tuple[str, ...] | None = None,
    notebook_dir: Path | None = None,
    kernel_name: str | None = None,
    log=print,
    overwrite: bool = False,
    resume: bool = False,
) -> Path:
    """Run the notebooks for one config; return its run directory.

    A run folder that already holds a trained run makes notebook 02 fail (nothing is
    overwritten) unless `overwrite` is True. With `overwrite` such a run is replaced: its
    figures (`figures/*.png`) are deleted before notebook 01, so that no figure of the old model
    (e.g. the attribution of files it ranked first) stays beside the new one's, and training
    deletes its checkpoints, history and `metrics.json`. With `resume` notebook 02 continues the
    run from its `last.pt` (an interrupted training goes on from its last checkpoint; a finished
    one trains no further) and notebooks 03 and 04 evaluate it again, e.g. after a change to the
    config's `sampling` section.

    Raises:
        ValueError: both `overwrite` and `resume`.
        RunFailure: the config is invalid, or a notebook cell failed.
    """
    import papermill as pm  # deferred: papermill is slow to import
    from papermill.exceptions import PapermillExecutionError

    if overwrite and resume:
        raise ValueError("overwrite replaces a trained run and resume continues it: pass one of them")
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    notebook_dir = NOTEBOOK_DIR if notebook_dir is None else notebook_dir

    config_path = Path(config_path).resolve()
    try:
        experiment = load_config(config_path)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise RunFailure(config_path, "config", " ".join(str(exc).split())) from None
    run_dir = (Path(runs_dir) / experiment.name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite and any((run_dir / name).is_file() for name in (LAST_CHECKPOINT, BEST_CHECKPOINT)):
        for figure in (run_dir / "figures").glob("*.png"):
            figure.unlink()
    for i, name in enumerate(notebooks, start=1):
        source = notebook_dir / name
        output = run_dir / name
        log(f"[{experiment.name}] {i}/{len(notebooks)} {name} ...", flush=True)
        started = time.perf_counter()
        parameters: dict[str, object] = {"config_path": str(config_path), "run_dir": str(run_dir)}
        accepted = pm.inspect_notebook(str(source))
        if "overwrite" in accepted:  # only the training notebook takes these two
            parameters["overwrite"] = overwrite
        if "resume" in accepted:
            parameters["resume"] = resume
        try:
            pm.execute_notebook(
                str(source),
                str(output),
                parameters=parameters,
                cwd=str(notebook_dir),
                kernel_name=kernel_name,
                progress_bar=False,
            )
        except PapermillExecutionError as exc:
            raise RunFailure(config_path, name, _describe_cell_error(exc) + f" (see {output})") from None
        log(f"[{experiment.name}] {i}/{len(notebooks)} {name} done in {time.perf_counter() - started:.0f} s")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wavenet_lib.pipeline",
        description="Run notebooks 01 → 04 with papermill for each experiment config.",
    )
    parser.add_argument("configs", nargs="+", type=Path, help="experiment YAML files")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go")
    parser.add_argument(
        "--keep-going", action="store_true", help="continue with the next config after a failure"
    )
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument(
        "--overwrite", action="store_true", help="retrain runs whose folder already holds a trained run"
    )
    existing.add_argument(
        "--resume",
        action="store_true",
        help="continue each run from its last.pt (a finished run trains no further) and evaluate it again",
    )
    args = parser.parse_args(argv)

    failures: list[RunFailure] = []
    for config in args.configs:
        try:
            run_dir = run_experiment(
                config, args.runs_dir, kernel_name=args.kernel, overwrite=args.overwrite, resume=args.resume
            )
            print(f"[{run_dir.name}] results in {run_dir}")
        except RunFailure as failure:
            failures.append(failure)
            print(f"error: {failure}", file=sys.stderr)
            if not args.keep_going:
                break
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
