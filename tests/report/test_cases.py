"""A recipe's cases over depth: accuracy against each case's network depth, per DropIn length."""

import json

from grownet.report import build_sections, load_evidence
from grownet.zoo import build

# (case, N of LeNet(2N), DropIn length, final accuracy or None while training, last test)
CASES = [
    ("lenet10-d2500", 5, 2500, 0.99, 0.99),
    ("lenet30-d2500", 15, 2500, 0.98, 0.98),
    ("lenet50-d2500", 25, 2500, None, 0.50),
    ("lenet10-d7500", 5, 7500, 0.97, 0.97),
    ("lenet30-d7500", 15, 7500, None, None),  # nothing measured yet: left out
]


def recipe_dir(tmp_path):
    folder = tmp_path / "lenet2n"
    rows = []
    for case, n, length, final, last in CASES:
        run = folder / case
        run.mkdir(parents=True)
        build("lenet2n", n=n, dropin_length=length).to_json(run / "graph.json")
        if last is not None:
            record = {"kind": "test", "iteration": 500, "loss": 0.1, "accuracy": last}
            (run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
        rows.append({"case": case, "run_dir": str(run), "dropin_length": length,
                     "final_test_accuracy": final, "verdict": "-", "paper": "-",
                     "measured": "-", "difference": "-"})  # fmt: skip
    (folder / "summary.json").write_text(json.dumps({"cases": rows}))
    return folder


def test_accuracy_over_depth_per_dropin_length(tmp_path):
    sections = build_sections(load_evidence([recipe_dir(tmp_path)]))
    paper = next(s for s in sections if s.id == "paper-0")
    fig = paper.figures["paper-0-depth"]
    lines = {trace.name: trace for trace in fig.data}
    assert set(lines) == {"DropIn length 2,500", "DropIn length 7,500"}
    short = lines["DropIn length 2,500"]
    assert list(short.x) == [12, 32, 52] and list(short.y) == [0.99, 0.98, 0.50]
    assert list(short.marker.symbol) == ["circle", "circle", "circle-open"]  # 50: training
    assert list(lines["DropIn length 7,500"].x) == [12]


def test_one_depth_draws_nothing(tmp_path):
    folder = recipe_dir(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    summary["cases"] = summary["cases"][:1]
    (folder / "summary.json").write_text(json.dumps(summary))
    sections = build_sections(load_evidence([folder]))
    assert not next(s for s in sections if s.id == "paper-0").figures
