"""A seller with valid identifiers (python-stdnum's VAT id and IBAN checks pass), for tests and
benches that finalize or export invoices: the well-known example VAT id DE136695976 and IBAN
DE89370400440532013000."""

from cloud.seller import Seller

SELLER = Seller(
    name="Tollgate Metering GmbH",
    street=["Hauptstr. 1"],
    postcode="10115",
    city="Berlin",
    country="DE",
    vat_id="DE136695976",
    email="billing@example.com",
    iban="DE89370400440532013000",
    bic="COBADEFFXXX",
)
