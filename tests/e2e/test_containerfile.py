"""The container image builds vpop's compiled wire module.

No container engine runs here, so the image's Python layer is built the way
deploy/Containerfile says, without one: the files its COPY steps put into /src go into
a directory of their own, the pip and python commands of its RUN steps run with a
fresh virtualenv's pip and python in the directories its WORKDIR steps name (apt-get,
rm and the like are the image's own business), and the installed vpop must then use
the compiled module, not the Python reference.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from e2e_support import REPO, clean_env
from vpop import config

pytestmark = pytest.mark.e2e

CONTAINERFILE = REPO / "deploy" / "Containerfile"
BUILD_TIMEOUT = 300


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined."""
    found, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, rest = text.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def python_steps(run: str) -> list[list[str]]:
    """The pip and python commands of a RUN step's `&&` chain."""
    steps = []
    for part in run.split("&&"):
        words = shlex.split(part)
        if words and words[0] in ("pip", "python"):
            steps.append(words)
    return steps


def test_the_image_s_python_layer_builds_and_uses_the_compiled_wire_module(tmp_path):
    root = tmp_path / "image"  # the image's file system, as far as the build needs it
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    tools = {"pip": [str(env_dir / "bin" / "python"), "-m", "pip"],
             "python": [str(env_dir / "bin" / "python")]}
    env = {k: v for k, v in clean_env().items()
           if k not in ("PYTHONPATH", "VPOP_WIRE", "VIRTUAL_ENV")}
    workdir = root
    ran = []
    for keyword, args in instructions(CONTAINERFILE):
        if keyword == "WORKDIR":
            workdir = root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, target = shlex.split(args)
            into = root / target.lstrip("/") if target.startswith("/") else workdir / target
            for source in sources:
                origin = REPO / source
                destination = into / origin.name if target.endswith("/") else into
                destination.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    shutil.copytree(origin, destination, ignore=shutil.ignore_patterns(
                        "__pycache__", "*.so", "*.egg-info"))
                else:
                    shutil.copy2(origin, destination)
        elif keyword == "RUN":
            for words in python_steps(args):
                result = subprocess.run([*tools[words[0]], *words[1:]], cwd=workdir, env=env,
                                        capture_output=True, text=True, timeout=BUILD_TIMEOUT)
                assert result.returncode == 0, (f"RUN {' '.join(words)} failed:\n"
                                                f"{result.stdout}{result.stderr}")
                ran.append(words[:2])
    assert ["pip", "install"] in ran, "no pip install in the Containerfile"
    assert ["python", "-c"] in ran, "the Containerfile does not check the compiled module"
    # Installed, not the source tree (the image removes /src): the compiled module is there.
    shown = subprocess.run(
        [*tools["python"], "-c", "import vpop.radius.wire as w, vpop.radius._wire as c; "
         "print(w.IMPLEMENTATION); print(c.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown[0] == "compiled (vpop.radius._wire)"
    assert shown[1].startswith(str(env_dir)) and shown[1].endswith(".so")
    # And the package carries what it reads at run time: templates, migrations, the demo
    # data and the dictionaries.
    home = tmp_path / "home"
    home.mkdir()
    for command in (["init", "--demo"], ["check-config"]):
        result = subprocess.run([str(env_dir / "bin" / "vpop"), "--config", "vpop.toml",
                                 *command], cwd=home, env=env, capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_s_config_passes_the_checks():
    settings = config.load(REPO / "deploy" / "vpop.toml",
                           env={"VPOP_DATABASE_URL": "postgresql://vpop@db/vpop"})
    assert settings.server.workers >= 1
    assert sys.version_info >= (3, 11)  # the image's Python (python:3.11-slim)
