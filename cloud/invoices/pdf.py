"""The invoice page as a PDF/A-3b file (A4, print CSS), rendered by WeasyPrint.

Pure apart from the rendering: it lays out `cloud.invoices.html.invoice_html` (the same page, its
`@media print` rules) and never touches the network: the URL fetcher refuses every URL that is
not a `data:` URL (the page is self-contained: inline CSS and SVG, system fonts such as DejaVu).
PDF/A-3 is the variant Factur-X embeds its XML into (`cloud.invoices.facturx`).
"""

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from weasyprint import HTML
from weasyprint.urls import URLFetcher

from cloud.invoices.html import PageLinks, document_title, invoice_html
from cloud.usage.buckets import UsagePoint

PDF_VARIANT = "pdf/a-3b"


def offline_fetcher() -> URLFetcher:
    """A WeasyPrint URL fetcher that only reads `data:` URLs (no file, no network)."""
    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


def invoice_pdf(
    document: Mapping[str, Any],
    *,
    charts: Mapping[int, Sequence[UsagePoint]] | None = None,
    links: PageLinks | None = None,
) -> bytes:
    """The document as PDF/A-3b bytes; `links` default to a standalone file's (no dead links)."""
    page = invoice_html(document, charts=charts, links=links or PageLinks(standalone=True))
    rendered = HTML(string=page, url_fetcher=offline_fetcher(), base_url=None).render()
    rendered.metadata.title = f"{document_title(document)} {document.get('printed_number') or ''}"
    rendered.metadata.authors = [_seller_name(document)]
    with warnings.catch_warnings():
        # WeasyPrint 70 opens its sRGB profile for PDF/A without closing it (freed at once).
        warnings.simplefilter("ignore", ResourceWarning)
        pdf: bytes = rendered.write_pdf(pdf_variant=PDF_VARIANT)
    return pdf


def _seller_name(document: Mapping[str, Any]) -> str:
    seller = document.get("seller")
    return str(seller.get("name") or "") if isinstance(seller, Mapping) else ""
