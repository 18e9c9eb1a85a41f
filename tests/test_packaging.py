"""What `pip install .` ships: CI installs in editable mode, which finds every folder, so a
package missing from pyproject's list goes unnoticed there and breaks a plain install."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    """``engine/layout/`` was not in ``[tool.setuptools] packages``: the wheel held no layout
    code, and after `pip install .` laying out failed, "No module named 'engine.layout'"."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tops = {name.split(".")[0] for name in listed}
    found = {".".join(init.parent.relative_to(ROOT).parts) for top in tops for init in (ROOT / top).rglob("__init__.py")}
    missing = sorted(found - listed)
    assert not missing, f"{missing}: not in [tool.setuptools] packages of pyproject.toml"


def _built_wheel(tmp_path: Path) -> zipfile.ZipFile:
    """The wheel setuptools builds (PEP 517's hook, as `pip wheel .` calls it) from a copy of
    pyproject.toml, README.md and the package folders, so the checkout gets no build/ folder."""
    src, out = tmp_path / "src", tmp_path / "dist"
    out.mkdir()
    for top in _tops():
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-c", "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))",
                            str(out)], cwd=src, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    return zipfile.ZipFile(out / built.stdout.strip().splitlines()[-1])


def _tops() -> set[str]:
    return {name.split(".")[0] for name in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]}


def test_the_wheel_holds_every_file_of_the_packages_a_py_typed_marker_and_the_command(tmp_path):
    """Round BO (a new user installing the built wheel, away from the checkout): the wheel had no
    ``py.typed``, so mypy on a trainer that imports ``engine.pause`` or ``engine.hooks`` said
    "module is installed, but missing library stubs or py.typed marker" and checked nothing. The
    other files the code reads (the viewer's ``.js``) are checked here too: CI's editable install
    reads them from the checkout, so one left out of the wheel goes unnoticed there."""
    with _built_wheel(tmp_path) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    shipped = {path.relative_to(ROOT).as_posix() for top in _tops() for path in (ROOT / top).rglob("*")
               if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".md")}
    assert not sorted(shipped - names), f"{sorted(shipped - names)}: not in the wheel (pyproject's package-data)"
    assert not [top for top in sorted(_tops()) if f"{top}/py.typed" not in names], "py.typed missing from the wheel"
    assert "evowatch = engine.cli:run" in entry_points


def test_the_sdist_holds_every_file_of_the_checkout(tmp_path):
    """Round BO: the sdist held tests/test_*.py (setuptools' default) but not conftest.py,
    sample_fixtures.py nor tests/data, so its tests could not even be collected; nor docs/, which
    README.md links to, CHANGELOG.md or examples/README.md. Built from a copy of the tracked files
    (a clean checkout), everything but the dot-folders (.ci/) must be in it."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an unpacked sdist): no list of tracked files to compare with")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tracked = [name for name in listed.split("\0") if name and not name.startswith(".") and (ROOT / name).is_file()]
    src, out = tmp_path / "src", tmp_path / "dist"
    for name in tracked:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, src / name)
    out.mkdir()
    built = subprocess.run([sys.executable, "-c", "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))",
                            str(out)], cwd=src, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    with tarfile.open(out / built.stdout.strip().splitlines()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = sorted(set(tracked) - names)
    assert not missing, f"{missing[:10]} ({len(missing)}): not in the sdist (MANIFEST.in)"
