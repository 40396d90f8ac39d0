"""bitcycle bench peer on a few hundred samples: every trainer runs, the figures are the runs' own."""

import argparse
import json

import pytest

from bitcycle.bench import peer


def test_peer_bench_tiny(tmp_path):
    p = argparse.ArgumentParser()
    peer.add_arguments(p)
    args = p.parse_args(["--epochs", "1", "--train-limit", "300", "--test-limit", "200", "--rounds", "2",
                         "--threads", "1", "--out", str(tmp_path)])
    assert peer.run(args) == 0
    rep = json.loads((tmp_path / "peer.json").read_text())
    assert list(rep["trainers"]) == ["peer", "cosine:2-8x2", "fp32"]
    base = rep["trainers"]["peer"]["runs"]
    for row in rep["trainers"].values():
        assert [r["round"] for r in row["runs"]] == [0, 1]
        ratios = sorted(r["wall_s"] / b["wall_s"] for r, b in zip(row["runs"], base))
        assert row["wall_ratio_to_peer"] == pytest.approx(sum(ratios) / 2)
        assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["wall_s"] > 0 and r["cpu_s"] > 0 for r in row["runs"])
    assert rep["trainers"]["peer"]["wall_ratio_to_peer"] == 1.0
    assert set(rep["provenance"]) >= {"machine", "cpu", "commit", "date"}
    assert len(rep["checks"]) == 3
    assert "| Brevitas bnn_pynq SFC (peer) |" in (tmp_path / "peer.md").read_text()
    # the report renders this run: the bench's own table and a plot drawn from the same JSON
    from bitcycle.bench.report import build

    out = tmp_path / "report"
    summary = build(tmp_path, out)
    assert "peer" in summary["present"]
    md = (out / "report.md").read_text()
    assert "| Brevitas bnn_pynq SFC (peer) |" in md
    assert (out / "peer.png").read_bytes().startswith(b"\x89PNG")
