"""No package of the collector imports one above it: the layers of ARCHITECTURE.md, enforced.

Every module under cloud/ is read with `ast` (no import is executed), and every `import cloud.X`
and `from cloud.X import ...` in it, at module level or inside a function, is mapped to its
package X. A module may import its own package and any package on a LOWER layer; it may not
import a higher layer or a sibling package on its own layer (except the pairs in SAME_LAYER, and
within the foundation, layer 0). Adapters (router.py, *_router.py,
cli.py, *_cli.py) may also import cloud.api and cloud.auth, whose dependencies declare who may
call a route. The composition root (layer TOP) may import anything.

A new package must be placed in LAYERS before it can be committed: `test_every_package_has_a_layer`.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CLOUD = Path(__file__).resolve().parents[1] / "cloud"
TOP = 99

LAYERS: dict[str, int] = {
    # 0 foundation: pure types, errors, settings, the database handle, the job runner, and the
    # rating core (pure arithmetic over cloud.domain). Imported by everyone, they import no domain.
    "__init__": 0,
    "db": 0,
    "errors": 0,
    "settings": 0,
    "seller": 0,  # the seller on invoices (read by settings)
    "domain": 0,
    "storable_text": 0,
    "answers": 0,
    "cli_support": 0,
    "choices": 0,  # the enums and limits the CLI's help names (issue 18: no heavy imports)
    "scheduler": 0,
    "rating": 0,
    "metrics": 0,  # the Prometheus metrics of every process (prometheus-client objects)
    # 1 sinks: anyone may write to them; they read and write only their own tables.
    "webhooks": 1,  # emit + signed delivery
    "incidents": 1,  # record / resolve incidents (emits through webhooks, see SAME_LAYER)
    "session_work": 1,  # the queue of (device, channel) pairs whose sessions are stale
    # 2 gateways: models, enrollment, registration (not the chain status, which reads events).
    "gateways": 2,
    # 3 who may call: keys, roles, share tokens, and the route dependencies built on them.
    "auth": 3,
    "api": 3,  # imports auth (see SAME_LAYER): it is auth's face for the routes
    # 4 ingest and its change feed (cloud/ingest/feed.py).
    "ingest": 4,
    # 5 the catalog: accounts, plans, metrics, profiles (with their session rules), devices.
    "catalog": 5,
    # 5 the archive of closed months: events, batches and keys in files that verify offline.
    "archive": 5,
    # 6 what is computed from stored events per device, and the direct sources.
    "sessions": 6,
    "direct": 6,
    # 7 the usage read model: an account's usage per period, bucketed.
    "usage": 7,
    # 7 the ingest log: verified batches and direct records through JetStream to the sinks.
    "bus": 7,
    # 8 readers over events, usage and incidents: quality detection, device and gateway twins.
    "quality": 8,
    "fleet": 8,
    # 9 what is billed and charted.
    "invoices": 9,
    "analytics": 9,
    # 10 thresholds: usage so far this period against per-account limits.
    "thresholds": 10,
    # 11 the billing console: users, browser sessions and pages over every read model below.
    "console": 11,
    # TOP the composition root: it assembles the app, the CLI, the feed's consumers, the jobs,
    # the schema of every model and the OpenAPI answers of every route.
    "app": TOP,
    "cli": TOP,
    "wiring": TOP,
    "schema": TOP,
    "migrations": TOP,
    "openapi_answers": TOP,  # reads every route's access rule (cloud.api, cloud.auth)
}

SAME_LAYER: frozenset[tuple[str, str]] = frozenset(
    {
        ("api", "auth"),  # the routes' dependencies (ReadDep, BillingDep, ...) call auth
        ("incidents", "webhooks"),  # opening or resolving an incident emits incident.* events
    }
)
"""Same-layer imports that are allowed, (importer, imported); never the reverse. Within the
foundation (layer 0) modules import each other freely: it is one shared base, not domains."""

ADAPTER_MAY_IMPORT = frozenset({"api", "auth"})


@dataclass(frozen=True, slots=True)
class Violation:
    """One import that goes up (or sideways) the layers."""

    module: str
    imported: str
    importer_package: str
    imported_package: str

    def __str__(self) -> str:
        return (
            f"{self.module} imports {self.imported}: {self.importer_package} "
            f"(layer {_name(LAYERS[self.importer_package])}) -> {self.imported_package} "
            f"(layer {_name(LAYERS[self.imported_package])})"
        )


def _name(layer: int) -> str:
    return "top" if layer == TOP else str(layer)


def package_of(path: Path) -> str:
    """cloud/ingest/store.py -> ingest; cloud/db.py -> db; cloud/__init__.py -> __init__."""
    parts = path.relative_to(CLOUD).parts
    return parts[0] if len(parts) > 1 else path.stem


def module_name(path: Path) -> str:
    """cloud/ingest/store.py -> cloud.ingest.store."""
    parts = path.relative_to(CLOUD.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_adapter(path: Path) -> bool:
    """Routers and CLIs: router.py, *_router.py, cli.py, *_cli.py."""
    return any(path.stem == n or path.stem.endswith(f"_{n}") for n in ("router", "cli"))


def cloud_imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[str, str]]:
    """(imported name, its cloud package) for every import of cloud.* anywhere in the tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _named(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            if target == "cloud":  # from cloud import wiring
                for alias in node.names:
                    yield from _named(f"cloud.{alias.name}")
            else:
                yield from _named(target)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _named(name: str) -> Iterator[tuple[str, str]]:
    parts = name.split(".")
    if parts[0] == "cloud" and len(parts) > 1:
        yield name, parts[1]


def violations_of(path: Path) -> list[Violation]:
    """The imports of this module that break the layers."""
    own = package_of(path)
    layer = LAYERS[own]
    if layer == TOP:
        return []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module_name(path)
    found = []
    for imported, package in cloud_imports(tree, module, path.name == "__init__.py"):
        if package == own or package not in LAYERS:  # unplaced: the other test names it
            continue
        if is_adapter(path) and package in ADAPTER_MAY_IMPORT:
            continue
        other = LAYERS[package]
        sibling = other == layer and layer != 0 and (own, package) not in SAME_LAYER
        if other > layer or sibling:
            found.append(Violation(module, imported, own, package))
    return found


def modules() -> list[Path]:
    """Every Python module under cloud/."""
    return sorted(CLOUD.rglob("*.py"))


def packages() -> set[str]:
    """Every package (directory with Python in it) and top-level module directly under cloud/."""
    return {package_of(path) for path in modules()}


def test_every_package_has_a_layer() -> None:
    """A new package or module under cloud/ must be placed in LAYERS (and so in the diagram)."""
    unplaced = sorted(packages() - set(LAYERS))
    assert not unplaced, f"not in tests/test_layers.py LAYERS (place them): {', '.join(unplaced)}"


def test_no_module_imports_a_higher_layer_or_a_sibling() -> None:
    """Every import of cloud.* goes to the module's own package or a lower layer."""
    found = [str(v) for path in modules() for v in violations_of(path)]
    assert not found, "imports against the layers:\n" + "\n".join(found)


# -- the checker itself: each rule fails when it should ---------------------------------------


@pytest.mark.parametrize(
    ("source", "where", "expected"),
    [
        ("from cloud.invoices.service import get_invoice", "auth/share.py", ["invoices"]),
        ("import cloud.quality.models", "ingest/store.py", ["quality"]),
        ("def f():\n    from cloud.fleet import twins\n", "ingest/store.py", ["fleet"]),
        ("from cloud import wiring", "catalog/devices.py", ["wiring"]),
        ("from cloud.direct.models import Source", "sessions/service.py", ["direct"]),
        ("from cloud.sessions import service", "catalog/devices.py", ["sessions"]),
        ("from cloud.catalog.models import Device", "sessions/service.py", []),
        ("from cloud.sessions.models import SessionRow", "sessions/service.py", []),
        ("from .models import SessionRow", "sessions/service.py", []),
        ("from ..invoices import models", "analytics/service.py", ["invoices"]),
        ("from cloud.api import ReadDep", "gateways/router.py", []),
        ("from cloud.api import ReadDep", "gateways/service.py", ["api"]),
        ("from cloud.auth.roles import Role", "session_work.py", ["auth"]),
        ("from cloud.auth.roles import Role", "api.py", []),
        ("from cloud.api import ReadDep", "auth/access.py", ["api"]),
        ("from cloud.webhooks.outbox import emit", "incidents/sink.py", []),
        ("from cloud.incidents.sink import record_incident", "webhooks/outbox.py", ["incidents"]),
        ("from cloud.errors import Unauthorized", "settings.py", []),
        ("from cloud.session_work import note_events", "webhooks/outbox.py", ["session_work"]),
        ("from cloud.invoices import cli", "app.py", []),
        ("import json\nfrom sqlalchemy import select", "usage/loader.py", []),
    ],
)
def test_the_checker_finds_what_it_should(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, where: str, expected: list[str]
) -> None:
    """Upward, sibling and in-function imports are found; own, lower and adapter ones are not."""
    root = tmp_path / "cloud"
    path = root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.CLOUD", root)
    assert [v.imported_package for v in violations_of(path)] == expected


def test_a_violation_names_module_import_and_both_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure message says which module imports what, and both layers."""
    root = tmp_path / "cloud"
    path = root / "ingest" / "store.py"
    path.parent.mkdir(parents=True)
    path.write_text("from cloud.quality.service import add_incident\n", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.CLOUD", root)
    (violation,) = violations_of(path)
    assert str(violation) == (
        "cloud.ingest.store imports cloud.quality.service: ingest (layer 4) -> quality (layer 8)"
    )


def test_an_unplaced_package_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package missing from LAYERS makes the placement test fail, naming it."""
    root = tmp_path / "cloud"
    (root / "billing_v2").mkdir(parents=True)
    (root / "billing_v2" / "__init__.py").write_text("", encoding="utf-8")
    (root / "db.py").write_text("", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.CLOUD", root)
    with pytest.raises(AssertionError, match="billing_v2"):
        test_every_package_has_a_layer()
