"""Static checks of Terraform configurations parsed by HashiCorp's HCL parser.

Terraform itself cannot be installed here, so `terraform validate` is
approximated: every directory of .tf files is parsed (hcl_refs.js) and its
references are resolved against what the directory declares.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Reference roots that are not declared by the configuration itself.
BUILTIN_ROOTS = {"path", "terraform", "self"}
MODULE_META_ARGS = {"source", "version", "providers", "count", "for_each", "depends_on"}


@dataclass
class Module:
    """Everything one directory of .tf files declares and references."""

    directory: Path
    parse_errors: dict[str, str]
    variables: dict[str, dict] = field(default_factory=dict)
    locals: set[str] = field(default_factory=set)
    resources: dict[str, dict] = field(default_factory=dict)
    data: dict[str, dict] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    refs: list[dict] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def parse_dirs(dirs: list[Path]) -> dict[Path, Module]:
    """Parses each directory with hcl_refs.js and indexes its declarations."""
    out = subprocess.run(
        ["node", str(HERE / "hcl_refs.js"), *[str(d) for d in dirs]],
        check=True,
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    raw = json.loads(out.stdout)
    modules = {}
    for d in dirs:
        entry = raw[str(d)]
        m = Module(directory=d, parse_errors=entry["errors"], refs=entry["refs"])
        for body in entry["files"].values():
            _index(m, body)
        modules[d] = m
    return modules


def _add(m: Module, table: dict, key: str, block: dict, kind: str) -> None:
    if key in table:
        m.duplicates.append(f"{kind} {key} declared twice")
    table[key] = block


def _index(m: Module, body: dict) -> None:
    for name, blocks in body.get("variable", {}).items():
        _add(m, m.variables, name, blocks[0], "variable")
    for blocks in body.get("locals", []):
        for name in blocks:
            if name in m.locals:
                m.duplicates.append(f"local {name} declared twice")
            m.locals.add(name)
    for rtype, named in body.get("resource", {}).items():
        for name, blocks in named.items():
            _add(m, m.resources, f"{rtype}.{name}", blocks[0], "resource")
    for dtype, named in body.get("data", {}).items():
        for name, blocks in named.items():
            _add(m, m.data, f"{dtype}.{name}", blocks[0], "data source")
    for name, blocks in body.get("module", {}).items():
        _add(m, m.modules, name, blocks[0], "module")
    for name, blocks in body.get("output", {}).items():
        _add(m, m.outputs, name, blocks[0], "output")


def _enclosing_block(m: Module, where: list) -> dict | None:
    """The resource, data or module block a reference path lies in."""
    if len(where) >= 3 and where[0] in ("resource", "data"):
        table = m.resources if where[0] == "resource" else m.data
        return table.get(f"{where[1]}.{where[2]}")
    if len(where) >= 2 and where[0] == "module":
        return m.modules.get(where[1])
    return None


def _dynamic_iterators(where: list) -> set[str]:
    return {str(where[i + 1]) for i, k in enumerate(where[:-1]) if k == "dynamic"}


def local_module_dir(m: Module, call: dict) -> Path | None:
    source = call.get("source", "")
    if source.startswith("./") or source.startswith("../"):
        return (m.directory / source).resolve()
    return None


def check(m: Module, children: dict[Path, Module]) -> list[str]:
    """Every problem found in one directory, as readable sentences."""
    problems = [f"{m.directory}: {f}: parse error: {e}" for f, e in m.parse_errors.items()]
    problems += [f"{m.directory}: {d}" for d in m.duplicates]
    used_vars: set[str] = set()
    for r in m.refs:
        parts = r["ref"].split(".")
        root = parts[0]
        at = f"{m.directory.name}/{r['file']} ({'.'.join(str(p) for p in r['path'][:4])})"
        if root in BUILTIN_ROOTS or root in _dynamic_iterators(r["path"]):
            continue
        # Type constraints (`list(string)`) and lifecycle attribute lists are
        # keywords, not references.
        if (r["path"][0] == "variable" and "type" in r["path"]) or "lifecycle" in r["path"]:
            continue
        if root == "var":
            used_vars.add(parts[1])
            if parts[1] not in m.variables:
                problems.append(f"{at}: var.{parts[1]} is used but no variable {parts[1]!r} is declared")
        elif root == "local":
            if parts[1] not in m.locals:
                problems.append(f"{at}: local.{parts[1]} is used but not declared in a locals block")
        elif root in ("each", "count"):
            block = _enclosing_block(m, r["path"])
            meta = "for_each" if root == "each" else "count"
            if block is None or meta not in block:
                problems.append(f"{at}: {r['ref']} is used outside a block with {meta}")
        elif root == "data":
            key = ".".join(parts[1:3])
            if key not in m.data:
                problems.append(f"{at}: data.{key} is referenced but not declared")
        elif root == "module":
            name = parts[1]
            if name not in m.modules:
                problems.append(f"{at}: module.{name} is referenced but not declared")
                continue
            child_dir = local_module_dir(m, m.modules[name])
            rest = [p for p in parts[2:] if not p.isdigit()]
            if child_dir in children and rest and rest[0] not in children[child_dir].outputs:
                problems.append(f"{at}: module.{name}.{rest[0]} is not an output of {child_dir.name}")
        elif "_" in root:
            if len(parts) < 2:
                problems.append(f"{at}: {r['ref']} is not a resource reference")
            elif f"{root}.{parts[1]}" not in m.resources:
                problems.append(f"{at}: resource {root}.{parts[1]} is referenced but not declared")
        else:
            problems.append(f"{at}: {r['ref']} has an unknown root {root!r}")
    for name in sorted(set(m.variables) - used_vars):
        problems.append(f"{m.directory.name}: variable {name!r} is declared but never used")
    for name, out in m.outputs.items():
        if not any(r["path"][:2] == ["output", name] for r in m.refs):
            problems.append(f"{m.directory.name}: output {name!r} references nothing")
    for name, call in m.modules.items():
        child_dir = local_module_dir(m, call)
        if child_dir is None:
            problems.append(f"{m.directory.name}: module {name!r} has a non-local source {call.get('source')!r}")
            continue
        if not child_dir.is_dir() or not any(child_dir.glob("*.tf")):
            problems.append(f"{m.directory.name}: module {name!r} source {call['source']!r} is not a directory of .tf files")
            continue
        child = children.get(child_dir)
        if child is None:
            problems.append(f"{m.directory.name}: module {name!r} source {child_dir} was not parsed")
            continue
        given = set(call) - MODULE_META_ARGS
        for arg in sorted(given - set(child.variables)):
            problems.append(f"{m.directory.name}: module {name!r} sets {arg!r}, which {child_dir.name} does not declare")
        required = {v for v, decl in child.variables.items() if "default" not in decl}
        for arg in sorted(required - given):
            problems.append(f"{m.directory.name}: module {name!r} does not set required variable {arg!r}")
    return problems


def check_tree(root: Path) -> tuple[dict[Path, Module], list[str]]:
    """Parses every directory under root holding .tf files and checks each."""
    dirs = sorted({p.parent.resolve() for p in root.rglob("*.tf")})
    modules = parse_dirs(dirs)
    problems = []
    for m in modules.values():
        problems += check(m, modules)
    return modules, problems
