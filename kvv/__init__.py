"""kvv: prove that an inference provider serves an open-weight model correctly."""

__version__ = "0.1.0"
