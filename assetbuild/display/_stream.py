"""Writing display lines without letting a closed reader (``assetbuild --json | head``) fail a build."""

from __future__ import annotations

from typing import TextIO


class LineWriter:
    """Writes whole lines; after the reader goes away, drops output instead of raising."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def line(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream itself was closed
            self.closed = True
