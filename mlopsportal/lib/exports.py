"""CSV downloads for auditors: streamed (a ledger of a million rows never sits in memory), UTF-8 with a BOM so a
spreadsheet reads the accents, and safe to open in one: a cell that a spreadsheet would take for a formula
(=, +, -, @, a tab or a carriage return first) is written as text."""
import csv
from collections.abc import Iterable

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A file-like object whose write hands back what csv.writer wrote."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_response(rows: Iterable[Iterable], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Line())

    def lines():
        yield "\ufeff"
        for row in rows:
            yield writer.writerow([csv_cell(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
