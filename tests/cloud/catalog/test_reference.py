"""docs/catalog.md is generated from the catalog's models: it is current, it names every
section and field, and every example in it is a catalog file the loader accepts."""

from decimal import Decimal
from pathlib import Path

import pytest

from cloud.catalog import reference
from cloud.catalog.loader import CatalogFile, parse_catalog
from cloud.catalog.plan_terms import plan_version
from cloud.domain import PriceModel
from cloud.rating.pricing import price


def test_the_committed_reference_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    # Failing here means a catalog model changed: run `python -m cloud.catalog.reference --write`.
    assert reference.main(["--check"]) == 0


def test_check_exits_1_on_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "catalog.md"
    stale.write_text("# an old reference\n")
    monkeypatch.setattr(reference, "DOC_PATH", stale)
    assert reference.main(["--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert reference.main(["--write"]) == 0
    assert reference.main(["--check"]) == 0


def test_every_section_and_field_is_documented() -> None:
    text = reference.render()
    paths = [path for path, _ in reference.sections(CatalogFile)]
    for expected in ("sites", "profiles", "metrics", "plans", "plans.versions",
                     "plans.versions.charges", "plans.versions.charges.tiers", "accounts",
                     "devices", "bindings"):  # fmt: skip
        assert expected in paths
    for path, model in reference.sections(CatalogFile):
        assert f"### `[[{path}]]`" in text
        for name in model.model_fields:
            assert f"| `{name}` |" in text
    assert "one of `standard`, `graduated`, `volume`, `package`" in text  # enum values
    assert "| `source` | string | **required** | one of `sessions`, `events` |" in text
    assert "| `kind` | string | **required** | one of `household`, `company` |" in text
    assert "| `combine` | string | **required** | one of `union`, `intersection` |" in text
    # a field holding one table gets its own section, every field of it documented
    assert "| `address` | table `[accounts.address]` | optional |" in text
    assert "### `[accounts.address]`" in text and "| `postcode` | string | **required** |" in text
    # every field of the catalog's own models says what it is
    for path, model in reference.sections(CatalogFile):
        for name, info in model.model_fields.items():
            assert info.description, f"{path}.{name} has no description"
    assert "| `block_size` | decimal (string or integer) | optional | > 0 |" in text  # bounds


@pytest.mark.parametrize("title", list(reference.EXAMPLES))
def test_every_example_is_a_catalog_the_loader_accepts(title: str) -> None:
    text = reference.EXAMPLES[title]
    catalog = parse_catalog(text)
    (plan,) = catalog.plans
    (terms,) = plan.versions
    (charge,) = plan_version(terms, plan_id=plan.id, version=1, currency=plan.currency).charges
    assert title.split(":")[0] in (charge.model.value, "block tiers")
    assert f"```toml\n{text.strip()}\n```" in reference.render()


def test_the_block_example_prices_as_its_title_says() -> None:
    # blocks of 10 minutes: 0.50 a block up to 60, 0.40 after; 61 min = 6 x 0.50 + 1 x 0.40
    (title,) = [t for t in reference.EXAMPLES if t.startswith("block tiers")]
    (plan,) = parse_catalog(reference.EXAMPLES[title]).plans
    (charge,) = plan_version(plan.versions[0], plan_id="home", version=1, currency="EUR").charges
    assert charge.model is PriceModel.GRADUATED
    assert str(price(charge, Decimal(61)).amount) == "3.40"
