"""Write a run's ``report.html`` when it ends: a trainer callback for the commands that want one.

>>> from grownet.train.callbacks import Callback
>>> isinstance(WriteReport(), Callback)
True
"""

from __future__ import annotations

from typing import Any

from grownet.train.callbacks import Callback


class WriteReport(Callback):
    """Draws the run directory's report once the run has ended; a failure only warns (the
    finished run is safe, and ``grownet report`` can draw it later)."""

    def on_end(self, trainer: Any, result: Any) -> None:
        from grownet.report.page import try_write_report  # late: plotly loads when a run ends

        try_write_report(result.run_dir)
