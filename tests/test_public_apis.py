"""Public library APIs only: no private attribute or method of another library in agent/ or aggregator/.

An AST scan of every module there. A private name is one with a leading underscore that is not a
dunder. What counts as *ours*: every private name our own source defines (a function, class or
module constant, a class attribute, an attribute a class of ours assigns on ``self``). Flagged:

* ``x._name`` (or ``getattr(x, "_name")``) where ``x`` is not ``self``/``cls``/``super()`` and ``_name``
  is not ours, or where ``x`` is a module imported from outside our packages;
* ``self._name`` / ``super()._name``, and a method ``_name`` defined, in a class of ours derived from
  another library's class, when that class (or a class it derives from) has ``_name``: reaching into,
  or overriding, the base's internals.

The few underscore names a library documents as public (named tuples' ``_replace`` and kin,
``os._exit``) are allowed by name, and annotations are not scanned (type checkers read them, the
running code does not).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

SCANNED = ("agent", "aggregator")
OUR_PACKAGES = ("agent", "aggregator", "tests")
DOCUMENTED_PUBLIC = {"_replace", "_make", "_asdict", "_fields", "_field_defaults", "_exit", "_missing_",
                     "_generate_next_value_", "_value_", "_name_", "_ignore_"}
HARMLESS_BASES = {"object", "Protocol", "NamedTuple", "Generic", "TypedDict", "ABC", "Enum", "IntEnum",
                  "StrEnum", "Flag", "IntFlag", "str", "int", "float", "bytes", "dict", "list", "tuple",
                  "set", "frozenset"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _modules(paths: list[Path]) -> Iterator[tuple[Path, ast.Module]]:
    for path in paths:
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_self(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted path of what it names, for every import in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _ours(dotted: str) -> bool:
    return dotted.split(".")[0] in OUR_PACKAGES


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    if isinstance(node, ast.Subscript):  # Generic[T], Protocol[T]
        return _dotted(node.value)
    return None


def _resolve(dotted: str, imports: dict[str, str]) -> object | None:
    """The object an imported dotted name refers to, or None when it cannot be imported here."""
    head, _, rest = dotted.partition(".")
    if head not in imports:
        return None
    path = imports[head] + (f".{rest}" if rest else "")
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _foreign_names(cls: object) -> set[str]:
    """The private names a foreign class and its bases have or use (attributes, and ``self._x`` in
    their source: instance attributes set in ``__init__`` exist on no class object)."""
    names: set[str] = set()
    for klass in getattr(cls, "__mro__", ()):
        if klass is object:
            continue
        names |= {n for n in vars(klass) if _private(n)}
        try:
            source = inspect.getsource(inspect.getmodule(klass))  # type: ignore[arg-type]
        except (OSError, TypeError):
            continue
        names |= {n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute) and _private(n.attr)}
    return names


class _Source:
    """Everything the scan needs to know about our own code."""

    def __init__(self, paths: list[Path]) -> None:
        self.trees = dict(_modules(paths))
        self.classes: dict[str, tuple[ast.ClassDef, dict[str, str]]] = {}
        self.defined: set[str] = set()  # private names our code defines
        for tree in self.trees.values():
            imports = _imports(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.classes[node.name] = (node, imports)
        for tree in self.trees.values():
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                    self.defined.add(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
                    self.defined.add(node.id)
                elif isinstance(node, ast.arg) and _private(node.arg):
                    self.defined.add(node.arg)
            for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
                if not self.foreign_bases(cls):  # attributes a class of ours (alone) gives itself
                    self.defined |= self.assigned_on_self(cls)

    @staticmethod
    def assigned_on_self(cls: ast.ClassDef) -> set[str]:
        return {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                and _is_self(n.value) and _private(n.attr)}

    def foreign_bases(self, cls: ast.ClassDef, seen: frozenset[str] = frozenset()) -> list[object]:
        """The classes of other libraries ``cls`` derives from (through our own classes too); a base
        that cannot be imported here stands as its dotted name."""
        imports = self.classes.get(cls.name, (cls, {}))[1]
        found: list[object] = []
        for base in cls.bases:
            dotted = _dotted(base)
            if dotted is None or dotted.split(".")[-1] in HARMLESS_BASES:
                continue
            if "." not in dotted and dotted in self.classes and dotted not in seen:
                found += self.foreign_bases(self.classes[dotted][0], seen | {cls.name})
                continue
            target = imports.get(dotted.split(".")[0], "")
            if _ours(target):
                name = dotted.split(".")[-1]
                if name in self.classes and name not in seen:
                    found += self.foreign_bases(self.classes[name][0], seen | {cls.name})
                continue
            obj = _resolve(dotted, imports)
            if isinstance(obj, type) and (issubclass(obj, BaseException) or obj.__module__ == "typing"):
                continue
            found.append(obj if obj is not None else dotted)
        return found


def scan(paths: list[Path], root: Path = REPO) -> list[Finding]:
    """Every access to another library's private names in the modules at ``paths``."""
    source = _Source(paths)
    findings: list[Finding] = []
    for path, tree in source.trees.items():
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        imports = _imports(tree)
        foreign_modules = {name for name, target in imports.items() if not _ours(target)}
        in_foreign_class: dict[int, set[str]] = {}  # id(node) -> the foreign bases' private names
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            bases = source.foreign_bases(cls)
            if not bases:
                continue
            theirs: set[str] = set()
            for base in bases:
                theirs |= _foreign_names(base) if isinstance(base, type) else {"*"}
            for node in ast.walk(cls):
                in_foreign_class[id(node)] = theirs
            for item in cls.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(item.name) \
                        and item.name in theirs:
                    findings.append(Finding(rel, item.lineno, f"overrides {item.name} of {_names(bases)}"))
        typing_only = _annotation_nodes(tree)
        for node in ast.walk(tree):
            name, receiver = _access(node)
            where = ast.unparse(receiver) if receiver is not None else ""
            if name is None or receiver is None or name in DOCUMENTED_PUBLIC or id(node) in typing_only:
                continue
            if _is_self(receiver):
                theirs = in_foreign_class.get(id(node))
                if theirs is not None and (name in theirs or ("*" in theirs and name not in source.defined)):
                    findings.append(Finding(rel, node.lineno, f"{where}.{name}: a base class's private"))
                continue
            head = _dotted(receiver)
            if head is not None and head.split(".")[0] in foreign_modules:
                findings.append(Finding(rel, node.lineno, f"{head}.{name}: private to {imports[head.split('.')[0]]}"))
            elif name not in source.defined:
                findings.append(Finding(rel, node.lineno, f"{where}.{name}: defined nowhere in our code"))
    return sorted(set(findings), key=lambda f: (f.path, f.line, f.what))


def _annotation_nodes(tree: ast.Module) -> set[int]:
    """Nodes inside annotations: read by type checkers only (every module has ``from __future__ import
    annotations``), so ``argparse._SubParsersAction``, typeshed's name for ``add_subparsers()``'s type,
    is no runtime dependence on a private."""
    roots: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            roots += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
                      if a is not None and a.annotation is not None]
            if node.returns is not None:
                roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {id(n) for root in roots for n in ast.walk(root)}


def _access(node: ast.AST) -> tuple[str | None, ast.expr | None]:
    """(private name, object) for ``obj._name`` and ``getattr/setattr/hasattr/delattr(obj, "_name")``."""
    if isinstance(node, ast.Attribute) and _private(node.attr):
        return node.attr, node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2:
        arg = node.args[1]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and _private(arg.value):
            return arg.value, node.args[0]
    return None, None


def _names(bases: list[object]) -> str:
    return ", ".join(f"{b.__module__}.{b.__qualname__}" if isinstance(b, type) else str(b) for b in bases)


def _our_modules() -> list[Path]:
    return sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py") if ".venv" not in p.parts)


def test_agent_and_aggregator_use_only_public_apis_of_other_libraries() -> None:
    findings = scan(_our_modules())
    assert not findings, "private parts of other libraries:\n" + "\n".join(map(str, findings))


# The habits the scan must catch, each as the aggregator once had it (aggregator/mqtt_link.py before
# issue 19), and what it must let pass.
CAUGHT = {
    "subclass reaching into its base": """
        import paho.mqtt.client as mqtt
        class Client(mqtt.Client):
            def loop_read(self):
                rc = self._packet_read()
                return self._loop_rc_handle(rc)
    """,
    "overriding a private method": """
        import paho.mqtt.client as mqtt
        class Client(mqtt.Client):
            def _create_socket(self):
                return super()._create_socket()
    """,
    "assigning a base's private": """
        from paho.mqtt.client import Client
        class Fast(Client):
            def touch(self):
                with self._msgtime_mutex:
                    self._last_bytes_received = 0.0
    """,
    "another object's private": """
        class Link:
            def ack(self, client):
                client._packet_queue(0, b"", 0, 0)
    """,
    "private looked up by name": """
        class Link:
            def ack(self, client):
                return getattr(client, "_packet_queue", None)
    """,
    "a library module's private": """
        import paho.mqtt.client as mqtt
        RAW = mqtt._socketpair_compat
    """,
    "a stdlib private at run time": """
        import argparse
        def add(parser):
            return isinstance(parser, argparse._SubParsersAction)
    """,
    "through a subclass of ours": """
        import paho.mqtt.client as mqtt
        class Base(mqtt.Client):
            pass
        class Leaf(Base):
            def peek(self):
                return self._in_packet
    """,
}
ALLOWED = """
    from __future__ import annotations
    import argparse
    import collections
    import os
    import threading
    from typing import NamedTuple
    class Point(NamedTuple):
        x: float
        y: float
    class Reader(threading.Thread):
        def __init__(self):
            super().__init__()
            self._lines = []  # a name threading.Thread does not have
        def run(self):
            self._lines.append(Point(1, 2)._replace(x=3))
    class Buffer:
        def __init__(self):
            self._buf = b""
    def take(other: Buffer):
        return other._buf  # a private of ours
    def leave():
        os._exit(0)
    def add(sub: argparse._SubParsersAction) -> None:  # an annotation: for type checkers only
        pass
    class Counter(collections.Counter):
        def total_seen(self):
            return self._seen
        _seen = 0
"""


def _write(tmp_path: Path, text: str) -> list[Path]:
    import textwrap

    path = tmp_path / "module.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return [path]


@pytest.mark.parametrize("case", sorted(CAUGHT))
def test_the_scan_catches(case: str, tmp_path: Path) -> None:
    assert scan(_write(tmp_path, CAUGHT[case]), root=tmp_path)


def test_the_scan_lets_our_own_privates_and_documented_names_pass(tmp_path: Path) -> None:
    assert scan(_write(tmp_path, ALLOWED), root=tmp_path) == []
