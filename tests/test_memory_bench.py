"""`bitcycle bench memory` and `bitcycle train --memory-efficient` end to end."""

import json

import torch

from bitcycle.cli import main

torch.set_num_threads(1)


def test_bench_memory_writes_the_json(tmp_path):
    out = tmp_path / "mem.json"
    assert main(["bench", "memory", "--model", "tfc", "--batch", "20", "--same-process", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("standard_bytes", "efficient_bytes", "ratio", "per_layer"):
        assert key in result
    assert result["ratio"] == result["standard_bytes"] / result["efficient_bytes"] > 3
    assert sum(r["standard_bytes"] for r in result["per_layer"]) == result["standard_bytes"]
    assert sum(r["efficient_bytes"] for r in result["per_layer"]) == result["efficient_bytes"]
    assert result["standard_peak_rss"] > 0 and result["fallbacks"] == [] and result["separate_processes"] is False
    assert (tmp_path / "mem.md").read_text().startswith("###")


def test_bench_memory_bad_input(capsys, tmp_path):
    assert main(["bench", "memory", "--model", "vgg", "--json", str(tmp_path / "x.json")]) == 2
    assert "unknown model 'vgg'" in capsys.readouterr().err
    assert main(["bench", "memory", "--model", "tfc", "--batch", "1", "--json", str(tmp_path / "x.json")]) == 2


def test_train_memory_efficient_gives_the_same_weights(tmp_path):
    """Same seed, data and epochs: the memory-efficient run ends with bit-identical weights."""
    common = ["train", "--model", "tfc", "--dataset", "digits", "--grad-bits", "cosine:2-8x2", "--epochs", "1",
              "--quiet", "--threads", "1"]
    assert main(common + ["--out", str(tmp_path / "std")]) == 0
    assert main(common + ["--out", str(tmp_path / "eff"), "--memory-efficient"]) == 0
    std = torch.load(tmp_path / "std" / "model.pt", weights_only=False)["state_dict"]
    eff = torch.load(tmp_path / "eff" / "model.pt", weights_only=False)["state_dict"]
    assert std.keys() == eff.keys() and all(torch.equal(std[k], eff[k]) for k in std)
    m_std = json.loads((tmp_path / "std" / "metrics.json").read_text())
    m_eff = json.loads((tmp_path / "eff" / "metrics.json").read_text())
    assert m_eff["memory_efficient"] is True and m_std["memory_efficient"] is False
    assert m_eff["test_accuracy"] == m_std["test_accuracy"]
