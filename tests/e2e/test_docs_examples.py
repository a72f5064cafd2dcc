"""Every example in README.md and docs/*.md runs as written against the demo.

The fenced blocks of those files are examples of these kinds:

- ```sh: each command (lines joined where one ends in a backslash; comments and blank
  lines left out) must exit with status 0;
- ```console: each line starting with "$ " is a command (continued the same way); the
  lines after it, up to the next command, are output it must print: each, with runs of
  white space taken as one space, the beginning of a line it printed, in order (other
  lines may come between), "…" standing for any text. A command without output lines
  must exit 0; `vpop report` and `vpop isp status` are run again for a while until their
  output matches, since the ledger brings the database up to date a moment after a NAS
  is answered;
- ```toml with [[nas]], [[isp]], [[profile]], [[subscriber]] or [[lease]] tables: an
  import file, which must import into a fresh copy of the demo's database, with every
  variable its `*_env` fields name set (to "example-secret");
- any other block, of another language or of none (output, log lines, synopses,
  templates): text, not run.

A block right after a line `<!-- not run: REASON -->`, and every block of a file that
holds a line `<!-- examples not run in this file: REASON -->`, is not run either. Each
block not run must say why (`test_every_block_not_run_says_why` lists them): none is
left out silently, and none is skipped.

Commands run where `make run` leaves a user, in the repository's directory with the
virtualenv's commands first on PATH, against a demo made by `vpop init --demo` in a
temporary directory (VPOP_CONFIG names its config): the demo server and the demo proxy
ISP's own vpop (var/isp-proxy/), each on free ports (e2e_support.demo_isp_server). The docs address the demo as
127.0.0.1 on the default ports; radtest and radclient lines get the demo's port added.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e_support import REPO, VpopServer, clean_env, demo_isp_server, init_demo, run_vpop

pytestmark = pytest.mark.e2e

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->\s*$")
FILE_NOT_RUN = re.compile(r"^<!-- examples not run in this file: (.+?) -->\s*$", re.M)
FENCE = re.compile(r"^(`{3,})(\S*)\s*$")
IMPORT_TABLE = re.compile(r"^\[\[(nas|isp|profile|subscriber|lease)(\.\w+)?\]\]\s*(#.*)?$",
                          re.M)
ENV_FIELD = re.compile(r'\b\w*_env\s*=\s*"([A-Za-z_][A-Za-z0-9_]*)"')
ENV_VALUE = "example-secret"
COMMAND_TIMEOUT = 60.0
SETTLE = 20.0  # how long a report may lag behind the accounting just sent


@dataclasses.dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the opening fence
    lang: str
    text: str
    not_run: str | None  # why it is not run; None: it runs

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def kind(self) -> str:
        if self.lang == "toml" and IMPORT_TABLE.search(self.text):
            return "import"
        return self.lang if self.lang in ("sh", "console", "toml") else "text"


def examples(path: Path) -> list[Example]:
    text = path.read_text()
    lines = text.splitlines()
    whole_file = FILE_NOT_RUN.search(text)
    found = []
    n = 0
    while n < len(lines):
        fence = FENCE.match(lines[n])
        if not fence:
            n += 1
            continue
        start, ticks, lang = n, fence.group(1), fence.group(2)
        n += 1
        while n < len(lines) and lines[n].strip() != ticks:
            n += 1
        body = "\n".join(lines[start + 1:n]) + "\n"
        marked = NOT_RUN.match(lines[start - 1]) if start else None
        reason = (marked.group(1) if marked else
                  whole_file.group(1) if whole_file else None)
        example = Example(path, start + 1, lang, body, reason)
        if reason is None and example.kind == "text":
            example = dataclasses.replace(
                example, not_run=f"{lang or 'no language'} block: text (output, log lines, "
                                 "synopsis or template), not a command")
        found.append(example)
        n += 1
    return found


EXAMPLES = [example for path in DOCS for example in examples(path)]


# --- the demo --------------------------------------------------------------------------

@dataclasses.dataclass
class Demo:
    server: VpopServer  # the demo's vpop
    isp: VpopServer  # isp-proxy's own vpop
    env: dict[str, str]

    @property
    def ports(self) -> dict[str, int]:
        s = self.server
        return {"auth": s.auth_port, "status": s.auth_port, "acct": s.acct_port,
                "coa": s.coa_port, "disconnect": s.coa_port}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("docs-demo")
    server = VpopServer.create(home)
    isp = demo_isp_server(home)
    isp.start()
    try:
        server.start()
    except BaseException:
        isp.stop()
        raise
    env = clean_env(VPOP_CONFIG=str(server.config),
                    PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    yield Demo(server, isp, env)
    problems = []
    for name, each in (("demo", server), ("isp-proxy", isp)):
        status = each.stop()
        if status != 0 or "Traceback" in each.log_text() + each.output_text():
            problems.append(f"{name}'s vpop exited with status {status}\n{each.diagnostics()}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A demo made by `vpop init --demo`, never served: each import example gets a copy."""
    return init_demo(tmp_path_factory.mktemp("docs-pristine")).parent


# --- running ---------------------------------------------------------------------------

def aimed(command: str, ports: dict[str, int]) -> str:
    """The command with the demo's port after 127.0.0.1 for radclient and radtest."""
    command = re.sub(r"(?<![\w.:])127\.0\.0\.1(?=\s+(auth|acct|status|coa|disconnect)\b)",
                     lambda m: f"127.0.0.1:{ports[m.group(1)]}", command)
    if re.search(r"\bradtest\b", command):
        command = re.sub(r"(?<![\w.:=])127\.0\.0\.1(?![\w.:])",
                         f"127.0.0.1:{ports['auth']}", command, count=1)
    for tool in ("radclient", "radtest"):
        if re.search(rf"\b{tool}\b", command):
            assert re.search(r"127\.0\.0\.1:\d+", command), \
                f"{tool} here does not address the demo as 127.0.0.1: {command}"
    return command


def run(command: str, demo: Demo) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", aimed(command, demo.ports)], cwd=REPO,
                          env=demo.env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)


def sh_commands(text: str) -> list[str]:
    commands, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            commands.append(pending)
            pending = ""
    assert not pending, f"a command ends in a backslash: {pending}"
    return commands


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    continued = False
    for line in text.splitlines():
        if continued:
            steps[-1] = (steps[-1][0] + "\n" + line, steps[-1][1])
        elif line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
        continued = (continued or line.startswith("$ ")) and line.endswith("\\")
    return steps


def _pattern(expected: str) -> re.Pattern:
    parts = " ".join(expected.split()).split("…")
    return re.compile(".*".join(re.escape(part) for part in parts))


def unmatched(expected: list[str], output: str) -> list[str]:
    """The expected lines not found, in order, at the beginning of output lines."""
    actual = [" ".join(line.split()) for line in output.splitlines()]
    wanted = [line for line in expected if line.strip() not in ("", "…")]
    position = 0
    for number, line in enumerate(wanted):
        pattern = _pattern(line)
        while position < len(actual) and not pattern.match(actual[position]):
            position += 1
        if position == len(actual):
            return wanted[number:]
        position += 1
    return []


def transcript(command: str, result: subprocess.CompletedProcess) -> str:
    return (f"$ {command}\n(exit status {result.returncode})\n--- stdout ---\n"
            f"{result.stdout[-6000:]}--- stderr ---\n{result.stderr[-3000:]}")


def check_console(example: Example, demo: Demo) -> None:
    for command, expected in console_steps(example.text):
        retries = re.match(r"\s*vpop (report|isp)\b", command) is not None
        deadline = time.monotonic() + SETTLE
        while True:
            result = run(command, demo)
            missing = unmatched(expected, result.stdout + result.stderr) if expected else []
            ok = not missing if expected else result.returncode == 0
            if ok or not retries or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert ok, (f"{example.where}: not as the docs show; missing from the first of:\n"
                    + "\n".join(missing) + "\n\n" + transcript(command, result))


def check_sh(example: Example, demo: Demo) -> None:
    for command in sh_commands(example.text):
        result = run(command, demo)
        assert result.returncode == 0, f"{example.where}:\n{transcript(command, result)}"


def check_import(example: Example, pristine: Path, tmp_path: Path) -> None:
    home = tmp_path / "demo"
    shutil.copytree(pristine, home)
    plan = tmp_path / "example.toml"
    plan.write_text(example.text)
    variables = {name: ENV_VALUE for name in ENV_FIELD.findall(example.text)}
    result = run_vpop(home / "vpop.toml", "import", str(plan), env=clean_env(**variables))
    assert result.returncode == 0, (f"{example.where}: does not import into the demo\n"
                                    f"{result.stdout}{result.stderr}")


# --- the tests -------------------------------------------------------------------------

RUN = [e for e in EXAMPLES if e.not_run is None]


@pytest.mark.parametrize("example", RUN, ids=[e.where for e in RUN])
def test_example_runs_as_written(example, request, tmp_path):
    if example.kind == "import":
        check_import(example, request.getfixturevalue("pristine"), tmp_path)
    elif example.kind == "console":
        check_console(example, request.getfixturevalue("demo"))
    elif example.kind == "sh":
        check_sh(example, request.getfixturevalue("demo"))
    else:
        pytest.fail(f"{example.where}: a {example.lang} block that is no import file: "
                    "make it one, or mark it <!-- not run: REASON -->")


def test_every_block_not_run_says_why():
    not_run = [e for e in EXAMPLES if e.not_run is not None]
    assert not_run and all(e.not_run.strip() for e in not_run), [
        e.where for e in not_run if not e.not_run.strip()]


def test_each_not_run_marker_stands_right_before_a_block():
    for path in DOCS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("<!-- not run"):
                assert NOT_RUN.match(line), f"{path.name}:{number + 1}: write <!-- not run: REASON -->"
                following = lines[number + 1] if number + 1 < len(lines) else ""
                assert FENCE.match(following), \
                    f"{path.name}:{number + 1}: the marker must be right before a ``` line"


def test_the_docs_hold_examples_of_every_kind():
    kinds = {example.kind for example in EXAMPLES if example.not_run is None}
    assert {"sh", "console", "import"} <= kinds
    assert any(e.not_run and e.kind == "sh" for e in EXAMPLES)


def test_matching_of_expected_output():
    output = "Sent x\nReceived Access-Accept Id 3 from 127.0.0.1:1\n\tFramed-Pool = \"p\"\n"
    assert unmatched(["Received Access-Accept", "   Framed-Pool = \"p\""], output) == []
    assert unmatched(["…Access-Accept Id…from", "Framed-Pool…"], output) == []
    assert unmatched(["Framed-Pool = \"p\"", "Received Access-Accept"], output) == [
        "Received Access-Accept"]  # in order
    assert unmatched(["Access-Accept"], output) == ["Access-Accept"]  # from the beginning
    assert aimed("radtest a b 127.0.0.1 0 s", {"auth": 1}) == "radtest a b 127.0.0.1:1 0 s"
    assert aimed("echo 'NAS-IP-Address = 127.0.0.1' | radclient 127.0.0.1 acct s",
                 {"acct": 2}) == "echo 'NAS-IP-Address = 127.0.0.1' | radclient 127.0.0.1:2 acct s"


def test_the_shipped_isp_template_is_the_one_the_docs_show():
    shipped = (REPO / "vpop" / "templates" / "reply" / "isp" / "welcome.j2").read_text()
    body = re.sub(r"\A\{#.*?#\}\n", "", shipped, flags=re.S)
    shown = [e.text for e in EXAMPLES if e.lang == "jinja" and "Welcome to" in e.text]
    assert shown == [body]
