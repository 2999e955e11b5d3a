"""Writing display lines without letting a closed reader (``assetbuild --json | head``) fail a build."""

from __future__ import annotations

from typing import TextIO

from ..safetext import safe_text


class LineWriter:
    """Writes whole lines; after the reader goes away, drops output instead of raising.

    A line is one line: a control character in it (a newline or an ANSI escape in a target name or a
    server's message) is shown escaped, so it can neither forge another line nor restyle the terminal.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def line(self, text: str) -> None:
        if self.closed:
            return
        shown = safe_text(text) + "\n"
        try:
            try:
                self.stream.write(shown)
            except UnicodeEncodeError:  # (a ValueError too) a name the stream's encoding cannot take
                encoding = getattr(self.stream, "encoding", None) or "ascii"
                self.stream.write(shown.encode(encoding, "backslashreplace").decode(encoding))
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream itself was closed
            self.closed = True
