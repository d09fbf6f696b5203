"""The documentation stays true to the code.

- docs/configuration.md is exactly what `python -m failoverd.config.reference` prints
  (the schema changed: run `make docs`);
- the state diagram in docs/architecture.md is the one `failoverd states --mermaid` draws;
- the examples in the reference validate, and the defaults they show are the defaults;
- every link between README.md and docs/*.md points at a file and heading that exist;
- `failoverd --help` names every command, and click's shell completion script is produced.
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from failoverd.cli import docs_cmds
from failoverd.cli.main import cli
from failoverd.config import reference
from failoverd.config.schema import NodeConfig, WitnessConfig
from failoverd.core.transitions import TRANSITIONS
from failoverd.core.types import NodeState

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
ARCHITECTURE = DOCS / "architecture.md"
# Written by another engineer: links to it are accepted while it does not exist yet.


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


# -- generated parts ------------------------------------------------------------


def test_configuration_reference_is_generated_from_the_schema() -> None:
    assert CONFIGURATION.read_text() == reference.render(), (
        "docs/configuration.md is stale: run `make docs` and commit the result"
    )


def test_every_key_has_a_description() -> None:
    assert reference.missing_descriptions() == []


def test_reference_names_every_key_of_both_files() -> None:
    text = CONFIGURATION.read_text()

    def keys(model: type[BaseModel]) -> set[str]:
        found = set(model.model_fields)
        for info in model.model_fields.values():
            for arg in re.findall(r"schema\.(\w+)", repr(info.annotation)):
                found |= keys(getattr(sys.modules["failoverd.config.schema"], arg))
        return found

    for model in (NodeConfig, WitnessConfig):
        missing = [
            k
            for k in keys(model)
            if f"| `{k}` |" not in text and not re.search(rf"\[(?:[\w.]+\.)?{k}\]", text)
        ]
        assert missing == [], f"{model.__name__}: not in docs/configuration.md: {missing}"


def test_durations_are_shown_as_strings() -> None:
    text = CONFIGURATION.read_text()
    assert '| `heartbeat_interval` | duration, > 0 | `"200ms"` |' in text
    assert '| `shutdown_timeout` | duration or `"auto"` | `"auto"` |' in text
    assert '| `api` | HOST:PORT | `"127.0.0.1:8790"` |' in text


def test_every_check_type_has_its_section() -> None:
    text = CONFIGURATION.read_text()
    for kind in ("tcp", "pop3", "imap", "smtp", "http", "exec"):
        assert f'#### Check type `"{kind}"`' in text


def test_architecture_holds_the_current_state_diagram() -> None:
    assert docs_cmds.markdown_block() in ARCHITECTURE.read_text(), (
        "the state diagram in docs/architecture.md is stale: run `make docs`"
    )


def test_state_diagram_shows_every_transition_and_state() -> None:
    diagram = docs_cmds.mermaid()
    for t in TRANSITIONS:
        assert f"    {t.source} --> {t.target}: " in diagram
    for state in NodeState:
        assert state.value in diagram
    for line in diagram.splitlines()[2:]:
        label = line.split(": ", 1)[1].replace("#58;", "").replace("#59;", "")
        assert ":" not in label and ";" not in label, line


def test_splice_replaces_only_the_block() -> None:
    doc = f"before\n{docs_cmds.BEGIN}\nold\n{docs_cmds.END}\nafter\n"
    assert docs_cmds.splice(doc) == f"before\n{docs_cmds.markdown_block()}\nafter\n"
    with pytest.raises(ValueError):
        docs_cmds.splice("no markers")


@pytest.mark.parametrize(
    ("args", "start"),
    [([], "move"), (["--mermaid"], "stateDiagram-v2"), (["--dot"], "digraph failoverd {")],
)
def test_states_command(args: list[str], start: str) -> None:
    result = CliRunner().invoke(cli, ["states", *args])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(start)
    assert "taking_over" in result.output


# -- the examples ---------------------------------------------------------------


def _section_model(root: type[BaseModel], path: list[str]) -> type[BaseModel]:
    model = root
    for name in path:
        annotation: Any = model.model_fields[name].annotation
        found = reference._model(annotation) or (reference._array_models(annotation) or [None])[0]
        assert found is not None, f"[{'.'.join(path)}] is not a table"
        model = found
    return model


def _commented_defaults(example: str, root: type[BaseModel]) -> list[tuple[str, str, str]]:
    """(table, `key = value` shown, `key = default`) for each `# key = value` line in a table.

    Keys with no default ("not set") are left out: their commented line is an example.
    """
    found = []
    table: list[str] = []
    for line in example.splitlines():
        if m := re.match(r"^\[\[?([\w.]+)\]\]?", line):
            table = m.group(1).split(".")
        elif table and (m := re.match(r"^# (\w+) = (.*)$", line)):
            key = m.group(1)
            shown = tomllib.loads(f"{key} = {m.group(2)}")[key]
            info = _section_model(root, table).model_fields[key]
            text = reference.default_text(info)
            if text == "not set":
                continue
            default = tomllib.loads(f"v = {text.strip('`')}")["v"]
            found.append((".".join(table), f"{key} = {shown!r}", f"{key} = {default!r}"))
    return found


@pytest.mark.parametrize(
    ("example", "root"),
    [(reference.NODE_EXAMPLE, NodeConfig), (reference.WITNESS_EXAMPLE, WitnessConfig)],
    ids=["node", "witness"],
)
def test_examples_show_the_real_defaults(example: str, root: type[BaseModel]) -> None:
    shown = _commented_defaults(example, root)
    assert shown, "the example shows no default"
    wrong = [(table, a, b) for table, a, b in shown if a != b]
    assert wrong == []


def test_node_example_is_complete() -> None:
    data = tomllib.loads(reference.NODE_EXAMPLE)
    text = reference.NODE_EXAMPLE
    for table in ("node", "peer", "cluster", "timing", "scripts", "log"):
        model = _section_model(NodeConfig, [table])
        for key in model.model_fields:
            assert re.search(rf"^#? ?{key}\b", text, re.MULTILINE), f"[{table}] {key}"
    assert {c["scope"] for c in data["check"]} == {"local", "remote"}
    NodeConfig.model_validate(data)
    WitnessConfig.model_validate(tomllib.loads(reference.WITNESS_EXAMPLE))


def test_quickstart_files_validate() -> None:
    """Every TOML file the quick start tells the reader to write is a valid one."""
    blocks = re.findall(r"```toml\n(.*?)```", (DOCS / "quickstart.md").read_text(), re.S)
    files = [tomllib.loads(b) for b in blocks]
    nodes = [f for f in files if "node" in f]
    assert len(nodes) == 2 and len(files) == 3
    for data in files:
        (NodeConfig if "node" in data else WitnessConfig).model_validate(data)
    assert all(n["scripts"]["demote"] for n in nodes)  # the short lease of docs/profiles.md


# -- links ------------------------------------------------------------------------

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^#{1,6} (.+?)\s*#*$", line)
        if not m:
            continue
        base = reference.slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def _links(path: Path) -> list[str]:
    return _LINK.findall(_FENCE.sub("", path.read_text()))


def test_docs_exist() -> None:
    expected = {
        "quickstart.md",
        "configuration.md",
        "load-balancer.md",
        "migrating.md",
        "runbook.md",
        "troubleshooting.md",
        "architecture.md",
    }
    assert expected <= {p.name for p in DOCS.glob("*.md")}


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: p.name)
def test_internal_links_resolve(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no such heading)")
    assert broken == [], f"{doc.name}: broken links"


def test_readme_opens_with_the_two_commands() -> None:
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:12])
    assert "make demo" in head
    assert "make test" in head


# -- the command line ----------------------------------------------------------


def test_top_level_help_names_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    description = result.output.split("Commands:")[0]
    missing = [name for name in cli.commands if not re.search(rf"\b{name}\b", description)]
    assert missing == [], "add these commands to the docstring of cli() in cli/main.py"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {name}" in result.output or f"Usage: failoverd {name}" in result.output
    assert cli.commands[name].short_help or cli.commands[name].help


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _failoverd_completion failoverd"),
        ("zsh", "compdef _failoverd_completion failoverd"),
        ("fish", "complete --no-files --command failoverd"),
    ],
)
def test_shell_completion_script(shell: str, marker: str) -> None:
    result = CliRunner().invoke(
        cli, [], prog_name="failoverd", env={"_FAILOVERD_COMPLETE": f"{shell}_source"}
    )
    assert result.exit_code == 0
    assert marker in result.output


def test_shell_completion_from_the_installed_command() -> None:
    command = Path(sys.executable).with_name("failoverd")
    if not command.exists():
        pytest.skip(f"no installed failoverd beside {sys.executable}")
    env = {**os.environ, "_FAILOVERD_COMPLETE": "bash_source"}
    out = subprocess.run(
        [str(command)], env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "_failoverd_completion()" in out


def test_completion_completes_subcommands() -> None:
    env = {"_FAILOVERD_COMPLETE": "bash_complete", "COMP_WORDS": "failoverd swi", "COMP_CWORD": "1"}
    result = CliRunner().invoke(cli, [], prog_name="failoverd", env=env)
    assert result.exit_code == 0
    assert "plain,switchover" in result.output


def test_readme_shows_completion() -> None:
    assert "_FAILOVERD_COMPLETE=bash_source failoverd" in (ROOT / "README.md").read_text()
