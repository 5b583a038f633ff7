"""What commands print: results to stdout, messages and errors to stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO


class Ui:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def error(self, text: str) -> None:
        print(f"hvbackup: error: {text}", file=self.err)

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=self.err)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A plain aligned table (no colours: output often ends up in tickets and e-mails)."""
        widths = [len(h) for h in headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        for line in (headers, ["-" * w for w in widths], *rows):
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(),
                  file=self.out)
