"""bench.json rows in the report: each theory in its own column, old files still readable."""

import pytest

from grownet.report.load import SchemaError, check_bench
from grownet.report.tables import bench_rows_table

ROW = {"variant": "p=0.5 skip", "ratio": 0.5, "mode": "skip", "forward_ms": 10.0,
       "backward_ms": 20.0, "total_ms": 30.0, "saving": 0.3, "theory_saving": 0.403,
       "paper_theory_saving": 0.346}  # fmt: skip


@pytest.mark.parametrize(
    ("row", "shown", "hidden"),
    [
        # written before the MAC-weighted column: no such column, the rest as before
        (ROW, ["40.30 %", "34.60 %", "paper&#x27;s formula"], ["by MACs"]),
        ({**ROW, "paper_theory_mac_saving": 0.352}, ["34.60 %", "35.20 %", "by MACs"], []),
    ],
)
def test_bench_rows_show_each_theory(row, shown, hidden):
    doc = check_bench({"benchmark": "depth_dropout", "model": "resnet56", "rows": [row]})
    html_text = bench_rows_table(doc)
    assert all(s in html_text for s in shown) and not any(s in html_text for s in hidden)


def test_mac_column_is_checked_when_present():
    with pytest.raises(SchemaError, match="paper_theory_mac_saving"):
        check_bench({"benchmark": "b", "rows": [{**ROW, "paper_theory_mac_saving": "x"}]})


def test_no_rows_no_table():
    assert bench_rows_table({"benchmark": "executor_overhead"}) == ""
