"""HTML to PDF with WeasyPrint: the same template a browser prints. WeasyPrint needs Pango from the system; where
it is missing, PdfUnavailable says how to get it (the printable HTML works without it)."""
from __future__ import annotations

HOW_TO_GET_IT = ("WeasyPrint needs the Pango library from the system to make PDFs. On Debian or Ubuntu: "
                 "apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; on macOS: brew install pango; "
                 "the Docker image has it. Until then, print the HTML report to PDF from the browser.")


class PdfUnavailable(RuntimeError):
    pass


def html_to_pdf(html: str, *, base_url: str) -> bytes:
    try:
        from weasyprint import HTML  # imports Pango through cffi: OSError when the system lacks it
    except (ImportError, OSError) as exc:
        raise PdfUnavailable(f"{HOW_TO_GET_IT} ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    # No fetching beyond the page itself: the report is self-contained (inline CSS and SVG).
    return HTML(string=html, base_url=base_url, url_fetcher=_no_fetch).write_pdf()


def _no_fetch(url: str, *args, **kwargs):
    raise ValueError(f"the report fetches nothing ({url[:80]})")
