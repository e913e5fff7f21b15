"""The head benchmark runs all four loss variants on a tiny config and reports each against the
softmax head's scored loss (its numbers are timings, so only their shape is checked here)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.heads import HEADS, LOSSES, main

TINY = Path(__file__).resolve().parents[1] / "notebooks" / "tiny.yaml"


def test_heads_benchmark_times_every_head_and_loss(tmp_path, capsys):
    out = tmp_path / "heads.json"
    assert main(["--config", str(TINY), "--batch", "2", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {(r["head"], r["loss"]) for r in rows} == {(h, k) for h in HEADS for k in LOSSES}
    assert all(r["ms_per_step"] > 0 for r in rows)
    reference = next(r for r in rows if (r["head"], r["loss"]) == ("relative_softmax", "scored"))
    assert reference["over_softmax_scored"] == 1.0
    assert "logistic_mixture" in capsys.readouterr().out
