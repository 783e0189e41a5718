#!/usr/bin/env python3
"""Rewrite README.md's metrics table (between the metrics:start/end markers) from
src/telemetry/catalog.rs, the one list of metrics. A unit test checks the README names them all."""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "src/telemetry/catalog.rs").read_text()
rows = re.findall(r'm\(\s*"([a-z_]+)",\s*([CGH]),\s*"([^"]*)",\s*"((?:[^"\\]|\\.)*)",?\s*\)', src)
kinds = {"C": "counter", "G": "gauge", "H": "histogram"}
table = "| metric | type | labels | meaning |\n|---|---|---|---|\n" + "".join(
    f"| `trailship_{n}` | {kinds[k]} | {l} | {h.replace(chr(92) + chr(34), chr(34))} |\n"
    for n, k, l, h in rows
)
readme = (root / "README.md").read_text()
start, end = "<!-- metrics:start -->\n", "<!-- metrics:end -->"
i, j = readme.index(start) + len(start), readme.index(end)
(root / "README.md").write_text(readme[:i] + table + readme[j:])
print(f"{len(rows)} metrics")
