"""Displays for build events: plain lines (CI, pipes), rich live view (terminals), JSON lines."""
