"""`make report`: one page over the benchmarks that ran, from their JSON only."""

import json
from html.parser import HTMLParser

import pytest

from bitcycle.bench.report import BENCHES, build
from bitcycle.cli import main
from bitcycle.errors import BitCycleError


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.tables, self._rows = [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs:
                self.refs.append(attrs[key])
        if tag == "table":
            self._rows = 0
        elif tag == "tr" and self._rows is not None:
            self._rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.tables.append(self._rows)
            self._rows = None


@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    """Two real benchmark runs, small: the driver's training step and one memory measurement."""
    d = tmp_path_factory.mktemp("bench")
    assert main(["bench", "driver", "--hidden", "16,16", "--bits", "2,8", "--emu-steps", "2", "--sim-steps", "0",
                 "--torch-steps", "2", "--out", str(d)]) == 0
    assert main(["bench", "memory", "--model", "tfc", "--batch", "20", "--same-process", "--json",
                 str(d / "memory.json")]) == 0
    return d


def test_report_page_is_whole_and_self_contained(benches, tmp_path):
    out = tmp_path / "report"
    (out / "hw.png").parent.mkdir(parents=True)
    (out / "hw.png").write_bytes(b"stale")  # a plot from an earlier build whose JSON is gone
    summary = build(benches, out)
    assert summary["present"] == ["memory", "driver"]
    assert set(summary["missing"]) == {b.name for b in BENCHES} - {"memory", "driver"}
    page = _Page()
    page.feed((out / "index.html").read_text())
    assert page.refs, "the page shows the plots"
    for ref in page.refs:  # everything it references is in the folder
        assert "://" not in ref and not ref.startswith(("/", "..")), ref
        assert (out / ref).is_file(), ref
    assert page.tables and all(rows >= 2 for rows in page.tables)  # a header and at least one row each
    assert not (out / "hw.png").exists()  # nothing stale survives
    md = (out / "report.md").read_text()
    assert "*missing*: no `hw.json` — run `make bench-hw`." in md
    driver = json.loads((benches / "driver.json").read_text())
    assert f"commit {driver['provenance']['commit']}" in md and driver["provenance"]["date"] in md
    assert "| emu | 2 |" in md  # the driver's own table, rendered from its JSON


def test_unknown_json_gets_a_generic_table_and_broken_json_one_line(tmp_path):
    (tmp_path / "custom.json").write_text(json.dumps({"bench": "custom", "images_per_s": 12.5,
                                                      "layers": [{"name": "fc0", "cycles": 49}]}))
    build(tmp_path, tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| images_per_s | 12.5 |" in md and "| fc0 | 49 |" in md
    (tmp_path / "hw.json").write_text("{not json")
    with pytest.raises(BitCycleError, match=r"hw.json: not valid JSON .*rerun `make bench-hw`"):
        build(tmp_path, tmp_path / "r")


def test_driver_plot_and_table_from_the_bench_json(benches, tmp_path):
    """The step-time breakdown is drawn from the driver bench's own JSON (every board part stacked)."""
    from bitcycle.bench.report import plot_driver

    data = json.loads((benches / "driver.json").read_text())
    assert plot_driver(data).startswith(b"\x89PNG")
    summary = build(benches, tmp_path / "r")
    assert (tmp_path / "r" / "driver.png").is_file() and "driver" in summary["present"]
    row = next(line for line in (benches / "driver.md").read_text().splitlines() if line.startswith("| emu | 2 |"))
    assert row.count("|") == 14 and row.endswith(" |")  # every column, the PyTorch one included
    from bitcycle.bench.driver import markdown

    no_torch = markdown({**data, "torch_cpu": []}).splitlines()
    assert any(line.startswith("| emu | 2 | ") and line.endswith("| — |") for line in no_torch)  # a row, not a dash
