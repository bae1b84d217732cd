"""The project's own checks: lint, formatting, and the conda env in step with pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# conda-forge names of PyPI packages where the two differ.
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower()


def test_conda_env_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs/blindlca.yaml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python"}
    # Snakemake itself runs the workflow and is not needed inside the rules' environment.
    wanted = {CONDA_NAMES.get(_name(r), _name(r)) for r in project["dependencies"]} - {"snakemake"}
    assert conda == wanted


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["snakefmt", "--check", "Snakefile", "rules"],
    ],
    ids=["ruff", "ruff-format", "snakefmt"],
)
def test_linters(command):
    tool = BIN / command[0]
    if not tool.exists():
        pytest.skip(f"{command[0]} is not installed (pip install -e '.[test]')")
    proc = subprocess.run([str(tool), *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--lint",
            "--config",
            "backbone_weights=random",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "good condition" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_scripts_have_a_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/cluster_images.py"), "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for arg in ("--descriptors", "--index", "--clusters", "--clustering", "--seed"):
        assert arg in proc.stdout
