"""The core decides; it never does I/O. Prove it from the source."""

import ast
from pathlib import Path

import failoverd.core

CORE = Path(failoverd.core.__file__).parent
FORBIDDEN = {"socket", "asyncio", "time", "threading", "subprocess", "os", "select", "signal"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_exist() -> None:
    assert len(list(CORE.glob("*.py"))) >= 10


def test_core_imports_no_io_module() -> None:
    offenders = {
        path.name: sorted(_imports(path) & FORBIDDEN)
        for path in CORE.glob("*.py")
        if _imports(path) & FORBIDDEN
    }
    assert offenders == {}


def test_core_imports_only_the_core_and_the_standard_library() -> None:
    allowed = {"failoverd", "dataclasses", "enum", "typing", "collections", "__future__"}
    for path in CORE.glob("*.py"):
        extra = _imports(path) - allowed
        assert not extra, f"{path.name} imports {sorted(extra)}"
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("failoverd.")
            ):
                assert node.module.startswith("failoverd.core"), f"{path.name}: {node.module}"


def test_the_check_itself_catches_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom asyncio import sleep\n")
    assert _imports(bad) & FORBIDDEN == {"time", "asyncio"}
