"""Hostile recipes: every one gets a clear error naming file and line, within 5 seconds, with no traceback and
nothing written outside the results root. `python -m tests.test_fuzz` prints the tally."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

from ablab.cli import app

from .conftest import TINY_BASE

BASE = "name: fuzz\n" + TINY_BASE + """\
profiles:
  cpu:
    scale: {img_size: 32, patch: 1.0, width: 1.0, depth: 1.0}
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 1, batch_size: 32, data: {name: shapetex, train_size: 64, val_size: 32}}
steps:
  - {id: o, label: tiny}
  - {id: a, label: deeper, transform: deepen_narrow, params: {depth: 3, dim: 32, heads: 2}}
"""


def _swap(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


IDENTIFIERS = ["/tmp/ablab-victim", "../../../../x", ".", "..", "summary.csv", "submitit", "a\\0b", "x" * 5000,
               "seed3", "table.md", "", "a/b", " lead", "é"]
VALUES = [
    ("epochs: 1", "epochs: 0"), ("epochs: 1", "epochs: 10000000000"), ("batch_size: 32", "batch_size: 100"),
    ("batch_size: 32", "batch_size: -4"), ("train: {epochs: 1,", "train: {lr: .nan, epochs: 1,"),
    ("train: {epochs: 1,", "train: {lr: .inf, epochs: 1,"), ("train: {epochs: 1,", "train: {lr: -1, epochs: 1,"),
    ("train: {epochs: 1,", "train: {label_smoothing: 5.0, epochs: 1,"),
    ("train: {epochs: 1,", "train: {drop_path: 1.5, epochs: 1,"), ("train: {epochs: 1,", "train: {ema: 1.5, epochs: 1,"),
    ("train: {epochs: 1,", "train: {mixup: -1, epochs: 1,"), ("train: {epochs: 1,", "train: {warmup_epochs: 7, epochs: 1,"),
    ("val_size: 32", "val_size: 0"), ("train_size: 64", "train_size: 10"), ("train_size: 64", "train_size: 1e12"),
    ("min_time: 0.01", "min_time: .inf"), ("min_time: 0.01", "min_time: 1000000"), ("batch_sizes: [2]", "batch_sizes: [100000000]"),
    ("batch_sizes: [2]", "batch_sizes: []"), ("batch_sizes: [2]", "batch_sizes: [2, 2]"),
    ("measure: {", "measure: {warmup: 1000000000, "), ("measure: {", "measure: {device: tpu, "),
    ("dim: 32, heads: 2}]", "dim: 1e12, heads: 2}]"), ("dim: 32, heads: 2}]", "dim: 1000000000000, heads: 2}]"),
    ("depth: 2, dim: 32", "depth: 100000000, dim: 32"), ("dim: 32, heads: 2}]", "dim: 32, heads: 5}]"),
    ("dim: 32, heads: 2}]", "dim: 32, heads: 2, window: -1}]"), ("dim: 32, heads: 2}]", "dim: 32, heads: 2, attention: wndow}]"),
    ("img_size: 32\n", "img_size: 33\n"), ("img_size: 32\n", "img_size: 0\n"), ("pool: avg", "pool: max"),
    ("scale: {img_size: 32,", "scale: {img_size: 100000,"), ("patch: 1.0", "patch: 0"), ("width: 1.0", "width: -1"),
    ("params: {depth: 3,", "params: {depth: three,"), ("params: {depth: 3,", "params: {dpeth: 3,"),
    ("transform: deepen_narrow", "transform: deepen"), ("label: tiny}", "label: tiny, from: nowhere}"),
    ("  cpu:\n", "  cpu:\n    seeds: [4294967296]\n"), ("  cpu:\n", "  cpu:\n    seeds: [1, 1]\n"),
    ("num_classes: 10", "num_classes: -3"), ("name: shapetex", "name: imagenet"),
]
DOCUMENTS = {
    "alias bomb": "name: bomb\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else ', '.join(['lol'] * 9)}]\n"
        for p, c in zip([""] + list("abcdefgh"), "abcdefghi")) + "notes: *i\n",
    "deep flow nesting": "name: deep\nnotes: " + "[" * 20000 + "]" * 20000 + "\n",
    "deep block nesting": "name: deep\nnotes:\n" + "".join("  " * i + "- \n" for i in range(1, 300)),
    "empty file": "",
    "a list at the top": "- name: x\n",
    "python object tag": BASE.replace("label: tiny}", "label: !!python/object/apply:os.system [echo pwned]}"),
    "duplicate keys": BASE.replace("name: fuzz\n", "name: fuzz\nname: again\n"),
    "syntax error": BASE.replace("label: tiny}", "label: [tiny}"),
    "steps not a list": BASE.split("steps:")[0] + "steps: {o: 1}\n",
    "a cycle": BASE.replace("label: deeper,", "label: deeper, from: b,") + "  - {id: b, from: a, transform: remove_class_token}\n",
    "tabs": BASE.replace("  cpu:", "\tcpu:"),
}


def hostile_recipes() -> dict[str, bytes]:
    """At least 60 recipes, each broken in one way: identifiers, values, documents, bytes."""
    out: dict[str, bytes] = {}
    for ident in IDENTIFIERS:
        quoted = '"' + ident.replace('"', '\\"') + '"'
        out[f"step id {ident[:20]!r}"] = _swap("id: a,", f"id: {quoted},").encode()
        out[f"profile {ident[:20]!r}"] = _swap("  cpu:\n", f"  {quoted}:\n").encode()
        out[f"recipe name {ident[:20]!r}"] = _swap("name: fuzz", f"name: {quoted}").encode()
    for old, new in VALUES:
        out[f"value {new.strip()[:40]!r}"] = _swap(old, new).encode()
    out.update({name: text.encode() for name, text in DOCUMENTS.items()})
    out["not UTF-8"] = BASE.encode().replace(b"tiny", b"t\xffny")
    out["binary garbage"] = bytes(range(256)) * 8
    out["oversized"] = BASE.encode() + b"# " + b"x" * (2 << 20) + b"\n"
    return out


def check(name: str, data: bytes, root: Path) -> dict[str, object]:
    """Validate and try to run one hostile recipe under `root`; what happened."""
    case = root / f"case{abs(hash(name)) % 10**8}"
    case.mkdir()
    path = case / "recipe.yaml"
    path.write_bytes(data)
    results = case / "results"
    start = time.perf_counter()
    out = []
    for command in (["validate", str(path)], ["run", str(path), "--measure-only", "--results", str(results)]):
        result = CliRunner().invoke(app, command)
        out.append((result.exit_code, result.output, result.exception))
    seconds = time.perf_counter() - start
    (code, text, exc), (run_code, run_text, run_exc) = out
    lines = [line for line in text.splitlines() if line.startswith(str(path))]
    outside = sorted(str(p.relative_to(case)) for p in case.rglob("*")
                     if p != path and results not in p.parents and p != results)
    return {"name": name, "rejected": code == 2 and run_code == 2,
            "file_line": bool(lines) and all(re.match(re.escape(str(path)) + r":\d+: ", line) for line in lines),
            "traceback": any(isinstance(e, BaseException) and not isinstance(e, SystemExit) for e in (exc, run_exc))
            or "Traceback" in text + run_text, "seconds": seconds, "outside": outside, "output": text}


def tally(rows: list[dict[str, object]]) -> str:
    n = len(rows)
    return (f"{n} hostile recipes: clear error with file:line {sum(r['rejected'] and r['file_line'] for r in rows)}/{n}, "
            f"tracebacks {sum(bool(r['traceback']) for r in rows)}, hangs (over 5 s) "
            f"{sum(r['seconds'] > 5 for r in rows)}, writes outside the results root "
            f"{sum(bool(r['outside']) for r in rows) + Path('/tmp/ablab-victim').exists()}")


def test_hostile_recipes(tmp_path):
    rows = [check(name, data, tmp_path) for name, data in hostile_recipes().items()]
    print("\n" + tally(rows))
    assert len(rows) >= 60
    bad = [(r["name"], r["output"][-300:]) for r in rows if not (r["rejected"] and r["file_line"])
           or r["traceback"] or r["outside"] or r["seconds"] > 5]
    assert not bad, bad
    assert not Path("/tmp/ablab-victim").exists()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        report = [check(name, data, Path(tmp)) for name, data in hostile_recipes().items()]
    for row in report:
        if not (row["rejected"] and row["file_line"]) or row["traceback"] or row["outside"] or row["seconds"] > 5:
            print(f"FAIL {row['name']}: {str(row['output'])[-300:]}")
    print(tally(report))
    sys.exit(0)
