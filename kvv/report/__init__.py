"""Reports: renderings of results.json (the single source), written beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import badge, compare, github, junit, markdown, sarif, terminal
from .markdown import render as render_markdown
from .terminal import render as render_terminal

# name -> (file name, renderer). Each report is one more line here.
REPORTS: dict[str, tuple[str, Callable[[dict], str]]] = {
    "summary": ("summary.md", render_markdown),
    "sarif": ("kvv.sarif", sarif.render),
    "junit": ("junit.xml", junit.render),
    "badge": ("badge.json", badge.render_json),
    "badge-svg": ("badge.svg", badge.render_svg),
}


def write_reports(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write every report into `out_dir`; return name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (filename, render) in REPORTS.items():
        path = out_dir / filename
        path.write_text(render(results), encoding="utf-8")
        paths[name] = path
    return paths


__all__ = ["REPORTS", "write_reports", "render_markdown", "render_terminal",
           "badge", "compare", "github", "junit", "markdown", "sarif", "terminal"]
