"""The house rules that a reader of the source can check, read with `ast` rather than by importing:
imports run down the architecture's picture (docs/architecture.md), only the CLI prints or exits,
files stay short, and the tests need nothing beside the repository (a user's clone has no shared
corpus folder beside it; CI has one, so this test is what proves the suite does without it)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "charrnn"
TESTS = ROOT / "tests"
MAX_LINES = 400

# package → the packages it must not import (nor any module in them).
FORBIDDEN = {
    "infer": ("training", "api", "render", "serve", "viz", "cli"),
    "training": ("infer", "api", "render", "serve", "viz", "cli"),
    "data": ("training", "infer", "api", "render", "serve", "viz", "cli"),
    "api": ("cli", "serve", "viz", "render"),
}


def sources(under: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import anywhere in the file, functions included.
    `from X import y` yields X and X.y, since y may be a module (`from charrnn import train`);
    relative imports are resolved against the file's package; `importlib.import_module("...")`
    with a literal name counts too."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and _called(node.func) in ("import_module", "importlib.import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _called(func: ast.expr) -> str:
    """The dotted name of what a call calls (`sys.exit`, `print`), or '' when it is no name."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        inner = _called(func.value)
        return f"{inner}.{func.attr}" if inner else ""
    return ""


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_import_checker_sees_every_form(tmp_path: Path) -> None:
    """The checker itself, on a file that imports train in each way Python allows."""
    pkg = tmp_path / "charrnn" / "infer"
    pkg.mkdir(parents=True)
    src = pkg / "x.py"
    src.write_text(
        "import charrnn.train.loop\n"
        "from charrnn import train\n"
        "from ..train import plan\n"
        "from .. import train as t\n"
        "def f():\n"
        "    from charrnn.train.config import TrainConfig\n"
        "    importlib.import_module('charrnn.train.state')\n"
        "from charrnn.model import trainable\n"  # a name that only starts like train
    )
    found = [line for line, m in imports(src, tmp_path) if _within(m, "charrnn.train")]
    assert sorted(set(found)) == [1, 2, 3, 4, 6, 7]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_down_the_picture(package: str) -> None:
    banned = [f"charrnn.{p}" for p in FORBIDDEN[package]]
    wrong = [
        f"{rel(path)}:{line} imports {module}"
        for path in sources(PACKAGE / package)
        for line, module in imports(path)
        if any(_within(module, b) for b in banned)
    ]
    assert wrong == [], f"charrnn/{package} must not import {', '.join(banned)}"


# What only the CLI may do: write to the terminal or end the process.
TERMINAL = {
    "print",
    "exit",
    "quit",
    "sys.exit",
    "os._exit",
    "sys.stdout.write",
    "sys.stderr.write",
}


def test_only_the_cli_prints_or_exits() -> None:
    wrong = []
    for path in sources():
        if _within(module_name(path), "charrnn.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Call) and _called(node.func) in TERMINAL:
                wrong.append(f"{rel(path)}:{node.lineno} calls {_called(node.func)}(")
            elif isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if _called(exc) == "SystemExit":
                    wrong.append(f"{rel(path)}:{node.lineno} raises SystemExit")
    assert wrong == [], "the library returns, yields events or raises CharRNNError"


def test_modules_stay_under_the_line_limit() -> None:
    long = {
        rel(p): n
        for p in sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"over {MAX_LINES} lines (GUIDE: files under ~400 lines)"


# spelled in pieces, so that this file does not itself mention what it looks for
SHARED_PATHS = ("../" + "shared", "shared" + "/corpora")


def test_tests_need_nothing_beside_the_repository() -> None:
    """No test reads the shared corpus folder beside the clone (tiny-shakespeare and friends): text
    comes from the built-in corpus (conftest.corpus_text), from the test itself, or from generated
    records. This file is left out: it names what it looks for."""
    wrong = []
    for path in sorted(TESTS.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        wrong += [f"{rel(path)} mentions {s!r}" for s in SHARED_PATHS if s in text]
        if path.suffix == ".py":  # a path built in pieces from those two names
            for node in ast.walk(ast.parse(text, filename=str(path))):
                if isinstance(node, ast.Constant) and node.value in ("shar" + "ed", "corpora"):
                    wrong.append(f"{rel(path)}:{node.lineno} names the path part {node.value!r}")
    assert wrong == []


MAX_BODY = 80
# How cli/ reaches training: the public call and its events, and what the command is built from.
CLI_TRAINING_IMPORTS = {
    "charrnn.api.options",  # TrainOptions: the flags' names, types and help
    "charrnn.api.run",  # main_process: whether this rank reports
    "charrnn.api.explain",  # limit_is_own: inspect names a plan's limit as the plan did
    "charrnn.render",  # the stderr console and the terminal handler
}


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return (body[-1].end_lineno or 0) - body[0].lineno + 1 if body else 0


@pytest.mark.parametrize("name", ["train.py", "prep.py", "export.py"])
def test_training_commands_are_short(name: str) -> None:
    """cli/ parses, calls and renders: no function body over MAX_BODY lines (the old plan.py and
    finetune.py moved into charrnn/api)."""
    path = PACKAGE / "cli" / name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = {
        n.name: _body_lines(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and _body_lines(n) > MAX_BODY
    }
    assert long == {}
    assert (
        not (PACKAGE / "cli" / "plan.py").exists()
        and not (PACKAGE / "cli" / "finetune.py").exists()
    )


def test_the_cli_reaches_training_only_through_the_public_call() -> None:
    """No cli/ module imports charrnn.training or run preparation: `charrnn.train`/`charrnn.plan`
    (through `import charrnn`), their events and the few names in CLI_TRAINING_IMPORTS."""
    wrong = [
        f"{rel(path)}:{line} imports {module}"
        for path in sources(PACKAGE / "cli")
        for line, module in imports(path)
        if (_within(module, "charrnn.training") or _within(module, "charrnn.api"))
        and not any(_within(module, ok) for ok in CLI_TRAINING_IMPORTS)
    ]
    assert wrong == []


def test_only_the_cli_and_the_rendering_module_use_the_terminal_libraries() -> None:
    """Rich and IPython's display are for showing things: charrnn/cli and charrnn/render only."""
    wrong = [
        f"{rel(path)}:{line} imports {module}"
        for path in sources()
        if not _within(module_name(path), "charrnn.cli") and module_name(path) != "charrnn.render"
        for line, module in imports(path)
        if _within(module, "rich") or _within(module, "IPython")
    ]
    assert wrong == []
