"""The portal's files ship with the package: every file under web/ is matched by a line
of setup.cfg's data_files (installed to <prefix>/share/vpop/web/, where the app looks
when it is not run from a checkout), and the app finds them there."""

from __future__ import annotations

import configparser
import glob
import shutil
import sys
from pathlib import Path

from vpop.portal import app as portal_app

REPO = Path(__file__).resolve().parents[2]


def data_files() -> dict[str, list[str]]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return {target: [p.strip() for p in patterns.split(",") if p.strip()]
            for target, patterns in parser["options.data_files"].items()}


def test_every_file_of_web_is_installed_beside_its_relative_path():
    installed = {}
    for target, patterns in data_files().items():
        for pattern in patterns:
            for name in glob.glob(str(REPO / pattern)):
                installed[Path(name).relative_to(REPO)] = Path(target) / Path(name).name
    shipped = sorted(path.relative_to(REPO) for path in (REPO / "web").rglob("*")
                     if path.is_file() and path.name != ".gitignore")
    missing = [str(path) for path in shipped if path not in installed]
    assert missing == [], "add a data_files line to setup.cfg for these"
    for source in shipped:
        assert installed[source] == Path("share/vpop") / source, source


def test_the_app_finds_web_under_the_installation_prefix(tmp_path, monkeypatch):
    """As after a non-editable `pip install .`: no web/ beside the package, the files
    in <prefix>/share/vpop/web/."""
    package = tmp_path / "site" / "vpop" / "portal"
    package.mkdir(parents=True)
    fake_module = package / "app.py"
    fake_module.write_text("")
    prefix = tmp_path / "prefix"
    shutil.copytree(REPO / "web", prefix / "share" / "vpop" / "web")
    monkeypatch.setattr(portal_app, "__file__", str(fake_module))
    monkeypatch.setattr(sys, "prefix", str(prefix))
    assert portal_app.web_root() == prefix / "share" / "vpop" / "web"
