"""The workspace contract of DESIGN.md: dependency direction and installability of each package."""

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "vremd-layers": "vremd_layers",
    "vremd-models": "vremd_models",
    "posetrack-data": "posetrack_data",
    "posetrack-eval": "posetrack_eval",
}


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_package_layout(dist):
    package_dir = ROOT / "packages" / dist
    module_dir = package_dir / "src" / PACKAGES[dist]
    meta = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    assert meta["name"] == dist
    assert meta["version"]
    assert (package_dir / "README.md").read_text().strip()
    assert (module_dir / "py.typed").exists()
    assert (module_dir / "__init__.py").exists()


def _requirement_names(dist: str) -> set[str]:
    names = set()
    for req in requires(dist) or []:
        if "extra ==" in req:
            continue
        name = req.split(";")[0].strip()
        for sep in "<>=!~[ ":
            name = name.split(sep)[0]
        names.add(name.lower())
    return names


def test_dependency_direction():
    assert "torch" not in _requirement_names("posetrack-eval")
    assert "torch" not in _requirement_names("posetrack-data")
    assert not {"vremd-models", "posetrack-data", "posetrack-eval"} & _requirement_names("vremd-layers")
    assert not {"posetrack-data", "posetrack-eval"} & _requirement_names("vremd-models")
    assert not {"vremd-layers", "vremd-models", "posetrack-eval"} & _requirement_names("posetrack-data")
    assert not {"vremd-layers", "vremd-models", "posetrack-data"} & _requirement_names("posetrack-eval")


# What each package's source may import of the others (the [predict] and [demo] extras of vremd-models join
# models and data for their command-line tools only).
ALLOWED_IMPORTS = {
    "vremd_layers": set(),
    "vremd_models": {"vremd_layers"},
    "posetrack_data": set(),
    "posetrack_eval": set(),
}
EXTRAS = ("vremd_models/predict", "vremd_models/demo")


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & (set(PACKAGES.values()) | {"training"})


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_source_imports_point_one_way(dist):
    module = PACKAGES[dist]
    for path in sorted((ROOT / "packages" / dist / "src").rglob("*.py")):
        relative = path.relative_to(ROOT / "packages" / dist / "src").as_posix()
        allowed = ALLOWED_IMPORTS[module] | {module}
        if relative.startswith(EXTRAS):
            allowed |= {"posetrack_data"}
        assert _imported_packages(path) <= allowed, f"{relative} imports {_imported_packages(path) - allowed}"


@pytest.mark.parametrize("module", ["posetrack_eval", "posetrack_data"])
def test_imports_without_torch(module):
    # torch set to None in sys.modules makes any `import torch` raise ImportError.
    code = f"import sys; sys.modules['torch'] = None; import {module}; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"\n{ci_command}\n" in readme
