"""What `pip install .` ships: CI installs in editable mode, which finds every folder, so a
package missing from pyproject's list goes unnoticed there and breaks a plain install."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    """``engine/layout/`` was not in ``[tool.setuptools] packages``: the wheel held no layout
    code, and after `pip install .` laying out failed, "No module named 'engine.layout'"."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tops = {name.split(".")[0] for name in listed}
    found = {".".join(init.parent.relative_to(ROOT).parts) for top in tops for init in (ROOT / top).rglob("__init__.py")}
    missing = sorted(found - listed)
    assert not missing, f"{missing}: not in [tool.setuptools] packages of pyproject.toml"
