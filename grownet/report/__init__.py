"""Interactive plotly reports of run directories, drawn from their files alone.

``write_report(["runs/a"])`` writes ``runs/a/report.html`` (loading the runs folder's shared
``plotly.min.js``), showing learning curves, growth stages, sweeps, benchmarks, the network,
Optuna studies and provenance, each when the run has the data; ``grownet report RUN_DIR ...``
does the same from the command line. See :mod:`grownet.report.load` for the files and their schemas.
"""

from grownet.report.load import ReportError, load_evidence
from grownet.report.page import build_sections, try_write_report, write_report

__all__ = ["ReportError", "build_sections", "load_evidence", "try_write_report", "write_report"]
