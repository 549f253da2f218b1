"""What a run shows and writes: a rich progress bar (rate, ETA, live metrics; Jupyter-aware)
on a terminal, one line per epoch elsewhere (a log file stays small), and per-epoch CSV/JSONL
logs that stay consistent when a run is resumed."""

from __future__ import annotations

import csv
import json
import os
import sys
import time


def format_row(row: dict, skip=("epoch", "seconds")) -> str:
    parts = []
    for key, value in row.items():
        if key in skip:
            continue
        parts.append(f"{key} {value:.4g}" if key == "learning_rate" else f"{key} {value:.5f}")
    return "  ".join(parts)


class Progress:
    """Per-epoch progress on ``stream`` (stderr by default), or nothing when ``enabled`` is
    False. A terminal or notebook gets a live bar; anything else one line per epoch."""

    def __init__(self, epochs: int, enabled: bool = True, stream=None):
        self.epochs, self.enabled = epochs, enabled
        self.stream = stream or sys.stderr
        self._bar = self._task = None
        if enabled:
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
            self.live = self.console.is_terminal or self.console.is_jupyter
        self._last = 0.0

    def start_epoch(self, epoch: int, steps: int | None) -> None:
        if not (self.enabled and self.live):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as Bar,
        )

        self._bar = Bar(
            TextColumn(f"epoch {epoch}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("", total=steps, rate="", metrics="")
        self._t0 = time.perf_counter()

    def step(self, done: int, read_metrics) -> None:
        """Advance to ``done`` steps; ``read_metrics()`` (a device read) at most 4 times/s."""
        if self._bar is None:
            return
        now = time.perf_counter()
        fields = {"rate": f"{done / max(now - self._t0, 1e-9):.1f} steps/s"}
        if now - self._last > 0.25:
            fields["metrics"] = format_row(read_metrics())
            self._last = now
        self._bar.update(self._task, completed=done, **fields)

    def end_epoch(self, row: dict, steps: int, compile_s: float) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if not self.enabled:
            return
        compiled = f" (+{compile_s:.1f}s compiling)" if compile_s >= 0.05 else ""
        self.console.print(
            f"epoch {row['epoch']}/{self.epochs}  {steps} steps  {row['seconds']:.2f}s"
            f"{compiled}  {format_row(row)}"
        )

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)


class Log:
    """One row per epoch in ``path`` (``.csv`` or ``.jsonl``). A fresh run starts the file
    anew (as Keras's CSVLogger); a resumed run rewrites it from the checkpoint's history, so
    its rows are exactly the epochs the model has been trained for."""

    def __init__(self, path, rows: list[dict]):
        self.path = None if path is None else os.fspath(path)
        if self.path is not None:
            with open(self.path, "w", newline="") as fh:
                if self.path.endswith(".csv"):
                    if rows:
                        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                        writer.writeheader()
                        writer.writerows(rows)
                else:
                    fh.writelines(json.dumps(r) + "\n" for r in rows)

    def write(self, row: dict) -> None:
        if self.path is None:
            return
        if self.path.endswith(".csv"):
            new = os.path.getsize(self.path) == 0
            with open(self.path, "a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)
        else:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
