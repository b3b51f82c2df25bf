"""The house rules of issue 13, as tests: no import circles inside a package (the lazy Kafka client factory
excepted), and no module much over 400 lines. Imports are read with ``ast``, inside functions and under
``TYPE_CHECKING`` too: a circle drawn lazily is still a circle in the design."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

from tests.conftest import ROOT

PACKAGES = {"fscore": ROOT / "libs" / "fscore" / "src", "fstranslation": ROOT / "libs" / "translation" / "src",
            "fscope_coordinator": ROOT / "services" / "coordinator" / "src",
            "fscope_participant": ROOT / "services" / "participant" / "src"}
#: the transports import each other's module lazily to pick a client; the one circle allowed
ALLOWED = {frozenset({"fscore.transport.kafka_common", "fscore.transport.kafka_confluent",
                      "fscore.transport.kafka_python"})}
MAX_LINES = 420


def _modules(package: str) -> dict[str, Path]:
    root = PACKAGES[package]
    out = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join([*anchor[: len(anchor) - node.level + 1], *([base] if base else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package: str) -> nx.DiGraph:
    modules = _modules(package)
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target in _imports(name, path, set(modules)):
            if path.name == "__init__.py" and target.startswith(name + "."):
                continue  # a package's face re-exporting its own modules
            graph.add_edge(name, target)
    return graph


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circles(package):
    circles = [c for c in nx.strongly_connected_components(import_graph(package)) if len(c) > 1]
    assert [sorted(c) for c in circles if frozenset(c) not in ALLOWED] == []


def test_the_walker_sees_a_circle_when_there_is_one(tmp_path, monkeypatch):
    pkg = tmp_path / "fscore"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from fscore.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from fscore import a\n")
    monkeypatch.setitem(PACKAGES, "fscore", tmp_path)
    assert [sorted(c) for c in nx.strongly_connected_components(import_graph("fscore")) if len(c) > 1] == [
        ["fscore.a", "fscore.b"]]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_module_is_much_over_400_lines(package):
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules(package).items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_services_depend_on_fscore_and_fscore_not_on_services():
    for name, path in _modules("fscore").items():
        assert not {t for t in _imports(name, path, {"fscope_coordinator", "fscope_participant"})}, name


def test_translation_depends_on_no_other_fscope_package():
    for name, path in _modules("fstranslation").items():
        assert not _imports(name, path, {"fscore", "fscope_coordinator", "fscope_participant"}), name
