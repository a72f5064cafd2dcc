"""The config `vpop init` writes, the reference tables of the docs and the code agree.

Every option in the template (vpop/templates/vpop.toml) must be in a table of
docs/configuration.md with the same default, and that default must be the one the
code uses (`vpop.config.Settings()`); every option the docs or the code know must be
in the template. The few values `vpop init` writes for this installation instead of
the default are listed below, and the docs must say so where they describe them.
Other docs that repeat a section's table (docs/accounting.md) must agree too.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import jinja2
import pytest

from vpop.config import Settings

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "vpop" / "templates" / "vpop.toml"
REFERENCE = REPO / "docs" / "configuration.md"
REPEATED_IN = (REPO / "docs" / "accounting.md",)

# What `vpop init` writes instead of the default: (section, option) -> value written.
INIT_WRITES = {
    ("database", "url"): "sqlite:///var/vpop.db",  # the default, spelled out
    ("identification", "country_code"): "49",      # --country-code
    ("accounting", "journal"): "var/accounting-journal",  # beside the database
    ("portal", "enabled"): True,                   # `make run` serves the portal
}


def rendered_template() -> dict:
    text = jinja2.Template(TEMPLATE.read_text(), keep_trailing_newline=True).render(
        database_path="var/vpop.db", country_code="49")
    return tomllib.loads(text)


def toml_value(text: str):
    return tomllib.loads(f"value = {text}")["value"]


def documented_defaults(path: Path) -> dict[tuple[str, str], tuple[object, str]]:
    """(section, option) -> (default, meaning) from the tables under `## [section]`
    headings, and under headings naming a section's settings (`The [accounting] section`)."""
    found = {}
    section = None
    for line in path.read_text().splitlines():
        heading = re.match(r"#+ .*?`\[(\w+)\]`", line) or re.match(r"#+ ", line)
        if heading:
            section = heading.group(1) if heading.groups() else None
            continue
        intro = re.match(r"The `\[(\w+)\]` section", line)
        if intro:
            section = intro.group(1)
            continue
        row = re.match(r"\|\s*`(\w+)`\s*\|\s*`(.+?)`\s*\|(.*)\|\s*$", line)
        if section and row:
            found[(section, row.group(1))] = (toml_value(row.group(2)), row.group(3))
    return found


def code_defaults() -> dict[tuple[str, str], object]:
    settings = Settings()
    out = {}
    for section in dataclasses.fields(settings):
        if section.name == "path":
            continue
        values = getattr(settings, section.name)
        for option in dataclasses.fields(values):
            value = getattr(values, option.name)
            out[(section.name, option.name)] = list(value) if isinstance(value, tuple) else value
    return out


def template_options() -> dict[tuple[str, str], object]:
    return {(section, option): value for section, options in rendered_template().items()
            for option, value in options.items()}


def test_the_template_the_docs_and_the_code_name_the_same_options():
    template, docs, code = template_options(), documented_defaults(REFERENCE), code_defaults()
    assert sorted(set(code) - set(template)) == [], "options the template leaves out"
    assert sorted(set(template) - set(code)) == [], "options the code does not know"
    assert sorted(set(code) - set(docs)) == [], "options docs/configuration.md leaves out"
    assert sorted(set(docs) - set(code)) == [], "options in the docs the code does not know"


@pytest.mark.parametrize("option", sorted(code_defaults()), ids=".".join)
def test_each_default_is_the_same_in_the_template_the_docs_and_the_code(option):
    template, docs, code = template_options(), documented_defaults(REFERENCE), code_defaults()
    default, meaning = docs[option]
    assert default == code[option], f"docs/configuration.md says {default!r}"
    if option in INIT_WRITES:
        written = INIT_WRITES[option]
        assert template[option] == written
        if written != default:  # the docs say what init writes, and why
            spelled = str(written).lower() if isinstance(written, bool) else str(written)
            assert "`vpop init` writes" in meaning and spelled in meaning, meaning
    else:
        assert template[option] == default, f"vpop init writes {template[option]!r}"


@pytest.mark.parametrize("path", REPEATED_IN, ids=lambda p: p.name)
def test_other_docs_repeat_the_same_defaults(path):
    code = code_defaults()
    repeated = documented_defaults(path)
    assert repeated, f"no settings table found in {path.name}"
    for option, (default, _) in repeated.items():
        assert option in code, f"{path.name} documents {option}, which the code does not know"
        assert default == code[option], f"{path.name}: {option} = {default!r}"
