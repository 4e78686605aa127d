"""A progress bar on stderr for the batch job (no dependency)."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``progress(done, total, what)``: a bar when ``total`` is known, a count otherwise.

    On a terminal one line is redrawn in place; in a log a line is written at most every
    ``every`` seconds, and always for the last step.
    """

    def __init__(self, stream=None, width: int = 30, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.every = 0.1 if self.tty else every
        self.last = 0.0
        self.start = time.monotonic()

    def __call__(self, done, total, what: str) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if not final and now - self.last < self.every:
            return
        self.last = now
        elapsed = f"{now - self.start:6.1f}s"
        if total:
            filled = int(self.width * done / total)
            text = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {what} {elapsed}"
        else:
            text = f"[{'?' * self.width}] {done:,} {what} {elapsed}"
        end = "\r" if self.tty and not final else "\n"
        print(f"{text:<79}", end=end, file=self.stream, flush=True)
