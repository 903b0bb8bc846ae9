"""What each optional extra adds to an install: the distributions it pulls in beyond the base install, and their
size on disk, read from the installed packages' own metadata (RECORD files) in this environment.

    python benchmarks/install_sizes.py [--out PREFIX]

Writes benchmarks/results/install_sizes.{md,json} (benchmarks/harness.py's writer, with the machine and versions).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import harness

EXTRAS = ("tune", "ray", "mcu")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _extras(requirement: str) -> set[str]:
    found = re.match(r"[^\[;]*\[([^\]]*)\]", requirement)
    return {e.strip() for e in found.group(1).split(",")} if found else set()


def _closure(requirements) -> set[str]:
    """Every installed distribution the `requirements` need, following the extras they name (psycopg[binary])."""
    seen, todo = set(), [(_name(r), _extras(r)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        key = (name, frozenset(extras))
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for req in dist.requires or []:
            wanted = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            if wanted and wanted.group(1) not in extras:
                continue
            todo.append((_name(req), _extras(req)))
    return {name for name, _ in seen}


def _size(name: str) -> int:
    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        path = Path(dist.locate_file(f))
        if path.is_file():
            total += path.stat().st_size
    return total


def main(argv=None) -> int:
    _, results = harness.arguments(__doc__, "install_sizes").start(argv)
    own = metadata.distribution("tflkit")
    requires = own.requires or []
    base = _closure([r.split(";")[0] for r in requires if "extra ==" not in r])
    rows = []
    for extra in EXTRAS:
        direct = [r.split(";")[0].strip() for r in requires if re.search(rf"extra\s*==\s*['\"]{extra}['\"]", r)]
        added = sorted(_closure(direct) - base)
        sizes = {name: _size(name) for name in added}
        rows.append({"extra": extra, "requires": direct, "adds": sizes, "total_bytes": sum(sizes.values())})
    cells = [[r["extra"], ", ".join(r["requires"]),
              ", ".join(f"{n} ({s / 1e6:.1f} MB)" for n, s in sorted(r["adds"].items(), key=lambda kv: -kv[1])),
              f"{r['total_bytes'] / 1e6:.1f} MB"] for r in rows]
    lines = ["# What each optional extra adds to the install", "",
             "Distributions beyond the base install's, with their installed size (from their RECORD files).", "",
             *harness.table(["extra", "requires", "adds", "size on disk"], cells)]
    results.write("\n".join(lines), summary={r["extra"]: r["total_bytes"] for r in rows}, raw=rows)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
