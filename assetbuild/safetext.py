"""Text from outside (target names, server messages) made safe to print.

A name or a server's message can carry newlines, ANSI escape sequences, other C0/C1 control characters
or Unicode bidi overrides; printed raw, they forge output (a fake ``done:`` line in a CI log, colours, a
cleared screen, a file name that reads backwards). Every place that prints such text passes it through
:func:`safe_text` (plain and rich output) or :func:`safe_json` (JSON output), which show each such
character as a visible escape (``\\n``, ``\\x1b``, ``\\u202e``) and leave every other character alone.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls, DEL, C1 controls, and the invisible characters that reorder or hide text: bidi
# embeddings/overrides/isolates and marks, line/paragraph separators, zero-width no-break space.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: object) -> str:
    """``text`` (made a string) with every control or bidi character shown as an escape."""
    value = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, value) if _UNSAFE.search(value) else value


def safe_json(value: Any, **options: Any) -> str:
    """``json.dumps(value)`` whose text holds no control or bidi character, yet parses back to ``value``:
    json escapes C0 controls itself; DEL, C1 and bidi characters are written as ``\\uXXXX``."""
    text = json.dumps(value, **options)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
