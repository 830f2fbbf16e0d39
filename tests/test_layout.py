"""The house's floors: no module imports one above it, nothing imports the CLI, and recipes, specs, settings and the
results store load without torch (so `ablab validate` and `ablab --help` start fast)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ablab"

# Each module's floor, by its dotted name under ablab (longest prefix wins). A module may import its own floor and
# those below it, never one above.
FLOORS = {
    "settings": 0, "schema": 0, "yamlsrc": 0, "io": 0, "seeds": 0, "stats": 0, "numbers": 0, "overrides": 0,
    "arch": 1, "nn": 1, "transforms": 1,
    "recipe": 2, "store": 2, "data": 2, "dist": 2, "cost": 2,
    "mim": 3, "mim.spec": 2, "dense": 3, "interop": 4,
    "engine": 4,
    "runs": 5, "analysis": 5,
    "report": 6,
    "paper.catalogue": 2, "paper.section": 2, "paper": 7,
    "cli": 8, "__init__": 8, "__main__": 9,
}


def floor(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FLOORS:
            return FLOORS[".".join(parts[:n])]
    raise KeyError(f"ablab.{module} has no floor in tests/test_layout.py")


def imports(path: Path) -> set[str]:
    """Every ablab module `path` imports, at module level or inside functions, as dotted names under ablab."""
    name = path.relative_to(PACKAGE).with_suffix("").parts
    package = name[:-1] if name[-1] != "__init__" else name[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - node.level + 1])
            target = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                submodule = PACKAGE.joinpath(*target, alias.name)
                out.add(".".join(target + [alias.name]) if submodule.with_suffix(".py").is_file()
                        or submodule.is_dir() else ".".join(target))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ablab."):
            out.add(node.module.removeprefix("ablab."))
    return {m for m in out if m}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_upward(path):
    me = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    mine = floor("__init__" if me == "__init__" else me.removesuffix(".__init__"))
    upward = [m for m in imports(path) if floor(m) > mine]
    assert not upward, f"ablab.{me} (floor {mine}) imports {upward} from above"


def test_nothing_imports_the_cli():
    users = [p for p in modules() if "cli" in imports(p) and p.name != "__main__.py"]
    assert not users


def test_recipes_specs_settings_and_the_store_load_without_torch():
    code = ("import sys, ablab, ablab.recipe, ablab.store.summary, ablab.store.keys, ablab.arch.describe; "
            "ablab.load_recipe('recipes/vit_to_swin.yaml'); ablab.spec('swin_b'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
