"""Hand-built invoice and credit note documents in the contract's shape (issue 15), for the
renderers' pure tests: a company invoice with two VAT rates, and a credit note of it.

Amounts, computed by hand:
  line 1 base fee                      19.00 (S 19 %)
  line 2 door openings 190, 10 incl.,  180 x 0.50 = 90.00 (S 19 %)
  line 3 energy 861000 Wh x 0.0003  = 258.30 (S 7 %)
  line 4 minimum: none. Net 367.30; taxable S19 = 109.00 -> tax 20.71; S7 = 258.30 -> tax 18.081
  -> 18.08; tax 38.79; gross 406.09.
"""

import copy
from typing import Any

SELLER: dict[str, Any] = {
    "name": "Tollgate Operator GmbH",
    "address": {
        "lines": ["Hafenstraße 1"],
        "postcode": "20457",
        "city": "Hamburg",
        "country": "DE",
    },
    "vat_id": "DE123456789",
    "email": "billing@operator.example",
    "bank": {"iban": "DE02120300000000202051", "bic": "BYLADEM1001", "account_name": "Operator"},
}


def invoice_sample(**changes: Any) -> dict[str, Any]:
    """A finalized de_DE company invoice (numbers above); `changes` replace top-level keys."""
    document: dict[str, Any] = {
        "id": 7,
        "series": "INV",
        "number": 12,
        "printed_number": "INV-000012",
        "status": "finalized",
        "document_type": "invoice",
        "locale": "de_DE",
        "account_id": "acme",
        "account": {
            "id": "acme",
            "name": "Acme Logistik AG",
            "kind": "company",
            "time_zone": "Europe/Berlin",
        },
        "time_zone": "Europe/Berlin",
        "period": "2026-11",
        "period_start": "2026-10-31T23:00:00+00:00",
        "period_end": "2026-11-30T23:00:00+00:00",
        "currency": "EUR",
        "total": "367.30",
        "computed_at": "2026-12-02T09:00:00+00:00",
        "as_of": "2026-12-02T09:00:00+00:00",
        "grace_until": "2026-12-05T09:00:00+00:00",
        "finalized_at": "2026-12-05T09:00:00+00:00",
        "issue_date": "2026-12-05",
        "due_date": "2026-12-19",
        "payment_terms_days": 14,
        "service_period": {"start": "2026-11-01", "end": "2026-11-30"},
        "seller": copy.deepcopy(SELLER),
        "buyer": {
            "name": "Acme Logistik AG",
            "address": {
                "lines": ["Lagerweg 5"],
                "postcode": "10115",
                "city": "Berlin",
                "country": "DE",
            },
            "vat_id": "DE987654321",
            "customer_number": "acme",
            "kind": "company",
            "country": "DE",
        },
        "tax": [
            {
                "category": "S",
                "rate": "19",
                "taxable": "109.00",
                "tax": "20.71",
                "exemption_reason": None,
            },
            {
                "category": "S",
                "rate": "7",
                "taxable": "258.30",
                "tax": "18.08",
                "exemption_reason": None,
            },
        ],
        "totals": {"net": "367.30", "tax": "38.79", "gross": "406.09", "due": "406.09"},
        "notes": [],
        "lines": [
            {
                "n": 1,
                "kind": "base_fee",
                "description": "Base fee, plan depot v2",
                "plan_id": "depot",
                "plan_version": 2,
                "metric": None,
                "part_start": "2026-10-31T23:00:00+00:00",
                "part_end": "2026-11-30T23:00:00+00:00",
                "quantity": None,
                "billable": None,
                "amount": "19.00",
                "unit": None,
                "detail": {
                    "base_fee": "19.00",
                    "factor": "1",
                    "part_seconds": "2592000",
                    "period_seconds": "2592000",
                },
                "corrects_invoice_id": None,
                "corrects_line": None,
                "tax_category": "S",
                "tax_rate": "19",
            },
            {
                "n": 2,
                "kind": "usage",
                "description": "Door openings, 190 openings: 10 included, 180 x 0.50",
                "plan_id": "depot",
                "plan_version": 2,
                "metric": "door_opens",
                "part_start": "2026-10-31T23:00:00+00:00",
                "part_end": "2026-11-30T23:00:00+00:00",
                "quantity": "190",
                "billable": "180",
                "amount": "90.00",
                "unit": "openings",
                "detail": {
                    "model": "standard",
                    "included_units": "10",
                    "billable": "180",
                    "unit_price": "0.50",
                    "quantity": "190",
                    "exact": "90.00",
                },
                "corrects_invoice_id": None,
                "corrects_line": None,
                "tax_category": "S",
                "tax_rate": "19",
            },
            {
                "n": 3,
                "kind": "usage",
                "description": "Energy, 861000 Wh: 861000 x 0.0003",
                "plan_id": "depot",
                "plan_version": 2,
                "metric": "energy",
                "part_start": "2026-10-31T23:00:00+00:00",
                "part_end": "2026-11-30T23:00:00+00:00",
                "quantity": "861000",
                "billable": "861000",
                "amount": "258.30",
                "unit": "Wh",
                "detail": {
                    "model": "standard",
                    "included_units": "0",
                    "billable": "861000",
                    "unit_price": "0.0003",
                    "quantity": "861000",
                    "exact": "258.3000",
                },
                "corrects_invoice_id": None,
                "corrects_line": None,
                "tax_category": "S",
                "tax_rate": "7",
            },
        ],
    }
    document.update(changes)
    return document


def credit_note_sample() -> dict[str, Any]:
    """A credit note of line 2 of `invoice_sample` (90.00 + 19 % = 107.10)."""
    invoice = invoice_sample()
    line = {**invoice["lines"][1], "n": 1, "credits_line": 2}
    return invoice_sample(
        id=3,
        document_type="credit_note",
        series="CN",
        number=1,
        printed_number="CN-000001",
        issue_date="2026-12-10",
        due_date=None,
        total="90.00",
        references=[
            {"invoice_id": 7, "printed_number": "INV-000012", "issue_date": "2026-12-05", "line": 2}
        ],
        tax=[
            {
                "category": "S",
                "rate": "19",
                "taxable": "90.00",
                "tax": "17.10",
                "exemption_reason": None,
            }
        ],
        totals={"net": "90.00", "tax": "17.10", "gross": "107.10", "due": "107.10"},
        lines=[line],
    )
