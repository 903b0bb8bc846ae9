"""requirements.lock (the exact versions `make test` installs) agrees with pyproject.toml's ranges: every direct
dependency, extras included, is pinned once and its pin lies in its range. A range moved without re-locking, or a
lock edited past a range, fails here rather than as a resolver error in CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]


def _pins(lock: str) -> dict:
    pins = {}
    for line in lock.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"requirements.lock: not an exact pin: {line!r}"
        key = canonicalize_name(name)
        assert key not in pins, f"requirements.lock pins {name} twice"
        pins[key] = Version(version)
    return pins


def _requirements(pyproject: str) -> list[Requirement]:
    project = tomllib.loads(pyproject)["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return [Requirement(spec) for spec in specs]


def disagreements(pyproject: str, lock: str) -> list[str]:
    pins = _pins(lock)
    wrong = []
    for req in _requirements(pyproject):
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            wrong.append(f"{req} is not in requirements.lock")
        elif not req.specifier.contains(pin, prereleases=True):
            wrong.append(f"{req} but requirements.lock pins {pin}")
    return wrong


def test_every_dependency_is_pinned_inside_its_range():
    wrong = disagreements((ROOT / "pyproject.toml").read_text(), (ROOT / "requirements.lock").read_text())
    assert not wrong, "; ".join(wrong) + " (after `make test` passes with the new versions: `make lock`)"


def test_a_moved_range_or_a_missing_pin_is_caught():
    pyproject = ('[project]\ndependencies = ["tensorflow>=2.22", "numpy<3"]\n'
                 '[project.optional-dependencies]\nx = ["ray"]\n')
    assert disagreements(pyproject, "tensorflow==2.21.0\nNumPy==2.4.6\n") == [
        "tensorflow>=2.22 but requirements.lock pins 2.21.0", "ray is not in requirements.lock"]


def test_the_makefile_installs_with_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK ?= requirements.lock" in makefile and "-c $(LOCK)" in makefile
