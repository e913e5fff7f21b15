"""Set-up stays honest: environment.yml matches pyproject.toml, configs/ all validate, CI runs tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from wavenet_lib.configs import load_config

ROOT = Path(__file__).resolve().parents[2]


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + list(meta["optional-dependencies"]["dev"])
    return dict(_split(r) for r in reqs)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or item in {"pip"} or item.startswith("python"):
                continue
            name, spec = _split(item)
            found[name] = spec
    return found


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_torch_is_pinned_to_the_cpu_wheel_version():
    assert pyproject_requirements()["torch"] == "==2.13.0"
    assert environment_requirements()["torch"] == "==2.13.0"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_validates(path: Path):
    exp = load_config(path)
    assert exp.name == path.stem
    assert exp.model.receptive_field_frames >= exp.model.context_size_in_frames


def test_example_configs_cover_the_documented_uses():
    names = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert {"quickstart", "e4_4hz", "pmemo2019_50hz", "hku956", "gpu_large"} <= names


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_ordered_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_receptive_field.ipynb",
        "02_training.ipynb",
        "03_evaluation.ipynb",
        "04_stimuli.ipynb",
        "05_audio_link.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path: Path):
    nb = json.loads(path.read_text())
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_cells_have_unique_ids(path: Path):
    """nbformat 4.5 cells carry ids; without them nbformat warns on every run (a hard error in
    its future versions), so a cell added by editing the JSON must get one."""
    nb = json.loads(path.read_text())
    ids = [cell.get("id") for cell in nb["cells"]]
    missing = [i for i, cell_id in enumerate(ids) if not cell_id]
    assert not missing, f"{path.name}: cells {missing} have no id (nbformat.validator.normalize adds them)"
    assert len(set(ids)) == len(ids), f"{path.name}: cell ids repeat"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_have_one_parameters_cell_with_an_nbmake_mock(path: Path):
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(tagged)}"
    source = "".join(tagged[0]["source"])
    assert "config_path" in source and "run_dir" in source
    mock = tagged[0]["metadata"]["nbmake"]["mock"]
    assert (ROOT / "notebooks" / mock["config_path"]).resolve().is_file()
    assert load_config(ROOT / "notebooks" / mock["config_path"]).name == "tiny"


def _resolves(dotted: str) -> bool:
    """Whether `wavenet_lib.a.b.c` names a module, or an attribute of one."""
    import importlib
    import importlib.util

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            obj = importlib.import_module(module)
            for name in parts[i:]:
                if not hasattr(obj, name):
                    return False
                obj = getattr(obj, name)
            return True
    return False


def test_every_dotted_name_the_docs_and_docstrings_give_exists():
    texts = [*ROOT.joinpath("wavenet_lib").rglob("*.py"), *ROOT.joinpath("benchmarks").glob("*.py")]
    texts += [ROOT / "README.md", *ROOT.joinpath("docs").glob("*.md")]
    texts += [*ROOT.joinpath("notebooks").glob("*.ipynb")]
    dotted = re.compile(r"\bwavenet_lib(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
    stale = sorted(
        {
            f"{path.relative_to(ROOT)}: {name}"
            for path in texts
            for name in dotted.findall(path.read_text(encoding="utf-8"))
            if not _resolves(name)
        }
    )
    assert not stale, "names that no longer exist:\n" + "\n".join(stale)


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("wavenet_lib.cli", "wavenet_lib.configs.describe", ["describe_config"]),
        (
            "wavenet_lib.models.wavenet",
            "wavenet_lib.models.layers",
            ["Gate", "StepWeights", "ResidualLayer", "WavenetStack"],
        ),
        (
            "wavenet_lib.evaluate.report",
            "wavenet_lib.evaluate.assessment",
            [
                "RecordingAssessment",
                "audio_events",
                "loudness_envelope",
                "sample_eda_us",
                "assess_recording",
                "assess",
            ],
        ),
        (
            "wavenet_lib.data.manifest_builders",
            "wavenet_lib.data.builder_common",
            ["LeftOut", "left_out_path", "read_left_out"],
        ),
        ("wavenet_lib.data.manifest_builders", "wavenet_lib.data.pmemo2019", ["build_pmemo2019_manifest"]),
        ("wavenet_lib.data.manifest_builders", "wavenet_lib.data.hku956", ["build_hku956_manifest"]),
        ("wavenet_lib.data.manifest_builders", "wavenet_lib.data.e4_sessions", ["build_e4_manifest"]),
    ],
)
def test_moved_names_still_import_from_where_they_were(old, new, names):
    """Code split into smaller modules keeps the import paths users and notebooks already have."""
    import importlib

    before, after = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(before, name) is getattr(after, name), f"{old}.{name}"
        assert name in before.__all__ and name in after.__all__
