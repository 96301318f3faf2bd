"""The package's import graph: no cycles between modules, backends never import back up, index/ never pulls torch.

The graph walker is benchmarks/code_shape.py (loaded here by path): the cycle
count it prints for issue 9's before/after figures and this test's verdict
come from one walker, which is itself tested on a planted package below.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_code_shape() -> ModuleType:
    spec = importlib.util.spec_from_file_location("code_shape", REPO / "benchmarks" / "code_shape.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


code_shape = _load_code_shape()


@pytest.fixture(scope="module")
def modules() -> dict:
    return code_shape.read_modules(REPO)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_walker_finds_cycles_through_function_and_type_only_imports(tmp_path):
    _write(tmp_path, {
        "embed/__init__.py": "",
        "embed/a.py": "from artefact.embed import b\n",
        "embed/b.py": "def late():\n    from artefact.embed.a import x\n    import json\n",
        "index/__init__.py": "",
        "index/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from artefact.index.d import D\n",
        "index/d.py": "from artefact.index import c\nimport numpy\n",
        "index/e.py": "from .c import something\n",  # relative import, no cycle
        # A facade package re-exporting its submodules, which import each other: no cycle.
        "index/facade/__init__.py": "from artefact.index.facade.x import X\n",
        "index/facade/x.py": "from artefact.index.facade.y import Y\nX = 1\n",
        "index/facade/y.py": "from artefact.index.facade import z\nY = 2\n",
        "index/facade/z.py": "",
        # A submodule taking a name from its package's __init__, which imports it: a cycle.
        "api/pkg/__init__.py": "from artefact.api.pkg.m import f\nNAME = 1\n",
        "api/pkg/m.py": "from artefact.api.pkg import NAME\n",
        "api/__init__.py": "",
        "api/sub/__init__.py": "",
        "api/sub/f.py": "from artefact.api.sub import g\n\n\ndef run():\n    pass\n",
        "api/sub/g.py": "import artefact.embed.a\n\n\ndef long():\n" + "    x = 1\n" * 9,
    })
    found = code_shape.read_modules(tmp_path)
    figures = code_shape.measure(tmp_path)

    assert [c["modules"] for c in figures["import_cycles"]] == [
        ["artefact.api.pkg", "artefact.api.pkg.m"],
        ["artefact.embed.a", "artefact.embed.b"],
        ["artefact.index.c", "artefact.index.d"],
    ]
    embed_cycle = figures["import_cycles"][1]
    assert embed_cycle["loop"] == ["artefact.embed.a", "artefact.embed.b", "artefact.embed.a"]
    assert any(e["function_local"] for e in embed_cycle["edges"])
    assert any(e["type_only"] for e in figures["import_cycles"][2]["edges"])
    assert {e.target for e in found["artefact.index.facade.y"].edges} == {"artefact.index.facade.z"}
    # `from .c import ...` resolves against index/ (its own package is no edge);
    # `import artefact.embed.a` from api/ also runs the package artefact.embed.
    assert {e.target for e in found["artefact.index.e"].edges} == {"artefact.index.c"}
    assert {e.target for e in found["artefact.api.sub.g"].edges} == {"artefact.embed", "artefact.embed.a"}
    assert figures["function_local_imports"] == {"all": 2, "of_package_modules": 1}
    assert figures["longest_api_function"]["function"] == "artefact.api.sub.g.long"
    assert figures["longest_api_function"]["lines"] == 10
    assert figures["largest_files"][0] == {"file": "api/sub/g.py", "lines": 13}


def test_no_import_cycle_between_modules(modules):
    found = code_shape.cycles(modules)
    described = [
        " -> ".join(c["loop"]) + "\n    " + "\n    ".join(
            f"{e['from']}:{e['line']} imports {e['to']}"
            + (" (inside a function)" if e["function_local"] else "")
            + (" (TYPE_CHECKING)" if e["type_only"] else "")
            for e in c["edges"]
        )
        for c in found
    ]
    assert not found, "import cycles between modules:\n" + "\n".join(described)


def test_layers_import_downwards_only(modules):
    """api -> index -> embed: no module imports a layer above its own."""
    rank = {"artefact.embed": 0, "artefact.index": 1, "artefact.api": 2}

    def layer(name: str) -> int:
        return rank[".".join(name.split(".")[:2])]

    upward = [
        f"{e.source}:{e.line} imports {e.target}"
        for info in modules.values()
        for e in info.edges
        if layer(e.target) > layer(e.source)
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_backends_never_import_the_front_door(modules):
    backends = [name for name in modules if name.startswith("artefact.embed.") and name.endswith("_backend")]
    assert len(backends) >= 2, backends  # open_clip and EfficientNet-Lite0 at least
    for name in backends:
        targets = {e.target for e in modules[name].edges}
        assert "artefact.embed.loader" not in targets, f"{name} imports the loader that dispatches to it"
        assert not {t for t in targets if t.endswith("_backend")}, f"{name} imports another backend"


def test_importing_index_does_not_load_torch(modules):
    """index/ needs numpy, faiss and SQLite at import, never the model stack (slow, large)."""
    index_modules = sorted(n for n in modules if n == "artefact.index" or n.startswith("artefact.index."))
    script = (
        "import importlib, json, sys\n"
        f"for name in {index_modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'open_clip', 'timm') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [], (
        f"importing {', '.join(index_modules)} loaded the model stack"
    )
