#!/usr/bin/env python3
"""Generates wit/REFERENCE.md from the doc comments of wit/kemi.wit.

Usage: scripts/wit-doc.py [--check]   (--check: fail when REFERENCE.md is stale)
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
src = (root / "wit/kemi.wit").read_text()

out = ["# kemibox:kemi@0.1.0 reference", "",
       "Generated from `wit/kemi.wit` by `scripts/wit-doc.py`; do not edit.", ""]
doc = []
scope = None
depth = 0
for raw in src.splitlines():
    line = raw.strip()
    if line.startswith("///"):
        doc.append(line[3:].strip().replace("|", "\\|"))
        continue
    m = re.match(r"package\s+([^;]+);", line)
    if m:
        out += doc + [""]
        doc = []
        continue
    m = re.match(r"(interface|world)\s+([\w-]+)\s*\{", line)
    if m:
        scope = m.group(2)
        depth = 1
        out += [f"## {m.group(1)} `{scope}`", ""] + ([" ".join(doc), ""] if doc else [])
        out += ["| item | signature | what |", "|---|---|---|"]
        doc = []
        continue
    m = re.match(r"(export\s+|import\s+)?([%\w-]+):\s*(func\(.*\)(\s*->\s*.+)?);", line)
    if m and scope:
        kind = (m.group(1) or "").strip()
        name = m.group(2)
        sig = m.group(3).replace("|", "\\|")
        out.append(f"| {kind + ' ' if kind else ''}`{name}` | `{sig}` | {' '.join(doc)} |")
        doc = []
        continue
    m = re.match(r"import\s+([\w-]+);", line)
    if m and scope:
        out.append(f"| import | `{m.group(1)}` | {' '.join(doc)} |")
        doc = []
        continue
    m = re.match(r"(variant|record|enum)\s+([\w-]+)\s*\{", line)
    if m and scope:
        out.append(f"| {m.group(1)} | `{m.group(2)}` | {' '.join(doc)} |")
        depth += 1
        doc = []
        continue
    m = re.match(r"([%\w-]+)(\(([^)]*)\))?(:\s*([^,]+))?,$", line)
    if m and scope and doc:
        t = m.group(3) or m.group(5)
        t = f"`{t}`" if t else "–"
        out.append(f"| ↳ `{m.group(1)}` | {t} | {' '.join(doc)} |")
        doc = []
        continue
    if line == "}":
        depth -= 1
        if depth == 0:
            out.append("")
    if line:
        doc = []

text = "\n".join(out).rstrip() + "\n"
dest = root / "wit/REFERENCE.md"
if "--check" in sys.argv:
    if not dest.exists() or dest.read_text() != text:
        sys.exit("wit/REFERENCE.md is stale: run scripts/wit-doc.py")
else:
    dest.write_text(text)
