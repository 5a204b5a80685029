"""Third-party private parts are used only in ``push365.seams``, one module per library, each
checked against one version of its library; the library declares every third-party import.

The private-name rule (an AST scan of ``shared/``, ``functions/``, ``devstack/``, ``bench/``,
``shared/push365/seams/`` excepted), where "private" is a name with one leading underscore and
"third-party" is any module outside the standard library and this repository:

1. importing a private module or name of a third-party library
   (``from firebase_admin import _utils``, ``import google.cloud.firestore_v1._helpers``,
   ``from google.cloud.logging_v2.handlers._helpers import x``);
2. reading or writing a private attribute (``x._name``) on anything but ``self``/``cls``, a
   module of the standard library or of this repository, or a class of the same file: the
   object is unknown, so it is taken as the library's unless ``ALLOWED`` says why not;
3. ``getattr``/``hasattr``/``setattr``/``delattr`` with a private name on anything but
   ``self``/``cls``;
4. in a class deriving (at any depth) from a third-party class: defining or using through
   ``self``/``cls`` a private name one of its third-party ancestors defines (overriding or
   reading the library's internals by inheritance).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from push365.seams import check_version
from push365.seams import cloud_logging as cloud_logging_seam
from push365.seams import firebase_admin as firebase_admin_seam
from push365.seams import firestore as firestore_seam
from push365.seams import grpc as grpc_seam

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("shared", "functions", "devstack", "bench")
SEAMS = ROOT / "shared" / "push365" / "seams"
OWN_PACKAGES = frozenset({"push365", "functions", "devstack", "bench", "tests", "shared"})
SEAM_MODULES = [firestore_seam, firebase_admin_seam, grpc_seam, cloud_logging_seam]

ALLOWED: dict[tuple[str, str], str] = {
    ("devstack/gateway.py", "_typeshed"): "the standard library's typing stubs, under "
    "TYPE_CHECKING only (never imported at run time)",
    ("bench/fcm_transport.py", "_get_app"): "FirebaseGateway._get_app, Push365's own method, "
    "called on a local variable holding the gateway",
}
"""(file, private name) -> why it is not a third-party private part."""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in OWN_PACKAGES and top not in sys.stdlib_module_names and top != "__future__"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    name: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


class _Scan(ast.NodeVisitor):
    def __init__(
        self, path: str, tree: ast.Module, allowed: dict[tuple[str, str], str] = ALLOWED
    ) -> None:
        self.path = path
        self.allowed = allowed
        self.found: list[Finding] = []
        self.bound: dict[str, str] = {}  # name -> the module (or module.object) it imports
        self.classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        for node in ast.walk(tree):  # every import of the file, wherever it stands
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.bound[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.bound[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = "push365" if node.level else (node.module or "")
                for alias in node.names:
                    self.bound[alias.asname or alias.name] = f"{base}.{alias.name}"

    def flag(self, node: ast.AST, name: str, what: str) -> None:
        if (self.path, name) not in self.allowed:
            self.found.append(Finding(self.path, getattr(node, "lineno", 0), name, what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _third_party(alias.name) and any(map(_private, alias.name.split("."))):
                self.flag(node, alias.name.split(".")[-1], f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not _third_party(module):
            return
        for part in module.split("."):
            if _private(part):
                self.flag(node, part, f"from {module} import ...")
        for alias in node.names:
            if _private(alias.name):
                self.flag(node, alias.name, f"from {module} import {alias.name}")

    def _known(self, base: ast.expr) -> bool:
        """Whether ``base`` is something other than a third-party object: self/cls (see
        ``_inherited``), a standard-library or own module, a class of this file."""
        root = _root(base)
        if not isinstance(root, ast.Name):
            return False
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            return True
        if root.id in self.bound:
            return not _third_party(self.bound[root.id])
        return isinstance(base, ast.Name) and base.id in self.classes

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _private(node.attr) and not self._known(node.value):
            self.flag(node, node.attr, f"{ast.unparse(node)}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        reflective = ("getattr", "hasattr", "setattr", "delattr")
        if isinstance(node.func, ast.Name) and node.func.id in reflective and len(node.args) > 1:
            target, name = node.args[0], node.args[1]
            if (
                isinstance(name, ast.Constant)
                and isinstance(name.value, str)
                and _private(name.value)
                and not (isinstance(target, ast.Name) and target.id in ("self", "cls"))
            ):
                self.flag(node, name.value, f"{node.func.id}(..., {name.value!r})")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        inherited = self._inherited(node)
        if inherited:
            for inner in ast.walk(node):
                name = None
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    name = inner.name
                elif (
                    isinstance(inner, ast.Attribute)
                    and isinstance(inner.value, ast.Name)
                    and inner.value.id in ("self", "cls")
                ):
                    name = inner.attr
                if name is not None and _private(name) and name in inherited:
                    self.flag(inner, name, f"{node.name} uses its library's {name}")
        self.generic_visit(node)

    def _inherited(self, node: ast.ClassDef) -> set[str]:
        """The private names the class's third-party ancestors define."""
        names: set[str] = set()
        for base in node.bases:
            dotted = _dotted(base)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            if head not in self.bound:
                continue
            found = _resolve(self.bound[head], rest)
            if not isinstance(found, type):
                continue
            for ancestor in found.__mro__:
                if _third_party(ancestor.__module__):
                    names |= {name for name in vars(ancestor) if _private(name)}
        return names


def _resolve(module_or_object: str, attributes: str) -> Any:
    """The object ``module_or_object`` (a module, or a module's attribute) then ``attributes``
    name, imported; None if it does not import."""
    module_name, obj = module_or_object, None
    while module_name:
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, attribute = module_name.rpartition(".")
            attributes = f"{attribute}.{attributes}" if attributes else attribute
    for attribute in filter(None, attributes.split(".")):
        obj = getattr(obj, attribute, None)
    return obj


def _sources(roots: tuple[str, ...]) -> Iterator[Path]:
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            if SEAMS not in path.parents and not {".venv", "build"} & set(path.parts):
                yield path


def scan(path: Path) -> list[Finding]:
    """Every use of a third-party private part in one file, by the rule above."""
    tree = ast.parse(path.read_text(), str(path))
    scanner = _Scan(path.relative_to(ROOT).as_posix(), tree)
    scanner.visit(tree)
    return scanner.found


def test_no_third_party_private_part_is_used_outside_its_seam() -> None:
    found = [finding for path in _sources(SCANNED) for finding in scan(path)]

    assert not found, (
        "third-party private parts used outside shared/push365/seams/ (move each into the "
        "seam module of its library, as a named function saying what it uses and why):\n"
        + "\n".join(map(str, found))
    )


def test_every_allowance_is_still_needed() -> None:
    # An allowance whose use went away would let a library's private name of the same
    # spelling in through that file.
    found = set()
    for path in _sources(SCANNED):
        scanner = _Scan(path.relative_to(ROOT).as_posix(), ast.parse(path.read_text()), {})
        scanner.visit(ast.parse(path.read_text()))
        found |= {(finding.path, finding.name) for finding in scanner.found}

    assert set(ALLOWED) - found == set(), "allowances no longer needed"


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("from firebase_admin import _utils", {"_utils"}),
        ("import google.cloud.firestore_v1._helpers", {"_helpers"}),
        ("from google.cloud.logging_v2.handlers._helpers import get_request_data", {"_helpers"}),
        ("def f(batch):\n    batch._add_write_pbs([])", {"_add_write_pbs"}),
        (
            "from firebase_admin import messaging\nmessaging._MessagingService",
            {"_MessagingService"},
        ),
        ("def f(s):\n    s._fcm_url = 'x'", {"_fcm_url"}),
        ("def f(app):\n    g(app)._client.session", {"_client"}),
        ("import google.cloud.logging_v2\ngoogle.cloud.logging_v2._x = 1", {"_x"}),
        ("def f(call):\n    return hasattr(call, '_state')", {"_state"}),
        ("def f(self):\n    return self._client._rpc_metadata", {"_rpc_metadata"}),
        (
            "from google.cloud import firestore\nclass C(firestore.Client):\n"
            "    @property\n    def _firestore_api(self): return self._firestore_api_helper()",
            {"_firestore_api", "_firestore_api_helper"},
        ),
        # Not third-party private parts:
        ("import os\nos._exit(0)", set()),
        ("from push365 import store\nstore._stream_options()", set()),
        ("from push365.fcm.firebase import _to_message", set()),
        ("class A:\n    def _x(self): return self._y\nA._x", set()),
        ("from google.cloud import firestore\nclass C(firestore.Client):\n    _mine = 1", set()),
        ("def f(x):\n    return x.__class__", set()),
    ],
)
def test_the_rule_flags_private_parts_and_only_them(source: str, names: set[str]) -> None:
    tree = ast.parse(source)
    scanner = _Scan("probe.py", tree)
    scanner.visit(tree)

    assert {finding.name for finding in scanner.found} == names


@pytest.mark.parametrize("seam", SEAM_MODULES, ids=lambda module: module.__name__)
def test_each_seam_is_checked_against_the_installed_version(seam: ModuleType) -> None:
    problem = check_version(seam.__name__, seam.DISTRIBUTION, seam.CHECKED_AGAINST, seam.USES)

    assert problem is None, problem


def test_a_version_mismatch_says_what_to_re_check() -> None:
    problem = check_version(
        "push365.seams.firestore", "google-cloud-firestore", "0.0.1", "WriteBatch._add_write_pbs"
    )

    found = importlib.metadata.version("google-cloud-firestore")
    assert problem == (
        "push365.seams.firestore was checked against google-cloud-firestore 0.0.1; found "
        f"{found}: re-check WriteBatch._add_write_pbs and update CHECKED_AGAINST"
    )


@pytest.mark.parametrize("seam", SEAM_MODULES, ids=lambda module: module.__name__)
def test_each_seam_is_pinned_in_requirements(seam: ModuleType) -> None:
    # The version checked is the version deployed.
    assert _requirements_pins().get(seam.DISTRIBUTION) == seam.CHECKED_AGAINST


def test_every_seam_names_the_private_parts_it_uses() -> None:
    for seam in SEAM_MODULES:
        text = Path(seam.__file__ or "").read_text()
        functions = [
            node
            for node in ast.parse(text).body
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not _private(node.name)
        ]
        assert functions, seam.__name__
        for node in functions:
            assert ast.get_docstring(node), f"{seam.__name__}.{node.name} has no docstring"


def _requirements_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, pinned = line.partition("==")
        if sep:
            pins[_normalized(name)] = pinned.strip()
    return pins


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules(package: Path) -> set[str]:
    """Every module the package's files import (at any depth: lazy imports too), absolute."""
    modules: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules.add(node.module)
                modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {module for module in modules if _third_party(module)}


def _distribution_of(module: str, candidates: Mapping[str, list[str]]) -> str | None:
    """The distribution that installs ``module``: the only one that installs its top-level
    package, or (a namespace package such as ``google``) the one whose files hold it."""
    owners = candidates.get(module.split(".")[0], [])
    if len(owners) == 1:
        return owners[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None  # an object imported from a module, not a module
    if spec is None or not spec.origin or not spec.has_location:
        return None  # a namespace package: its own subpackages say
    origin = Path(spec.origin).resolve()
    for owner in owners:
        distribution = importlib.metadata.distribution(owner)
        for file in distribution.files or ():
            if Path(str(distribution.locate_file(file))).resolve() == origin:
                return owner
    return None


def test_the_library_declares_every_third_party_import() -> None:
    candidates = importlib.metadata.packages_distributions()
    imported = {
        _normalized(distribution)
        for module in _imported_modules(ROOT / "shared" / "push365")
        if (distribution := _distribution_of(module, candidates)) is not None
    }
    project = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["project"]
    declared = {
        _normalized(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        for requirement in project["dependencies"]
    }

    assert imported - declared == set(), "imported by shared/push365, not in its dependencies"
    assert declared - imported == set(), "in shared/pyproject.toml, imported nowhere"
