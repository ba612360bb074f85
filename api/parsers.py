"""The one body the API reads: JSON, strictly (no NaN or Infinity, no NUL, nesting that a pipeline would send)."""
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_BODY_DEPTH = 32


def _depth(value, level: int = 0) -> int:
    if level > MAX_BODY_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class StrictJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_BODY_DEPTH} levels.") from None
        if _depth(data) > MAX_BODY_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_BODY_DEPTH} levels.")
        if _has_nul(data):
            raise ParseError("NUL characters are not allowed in the request.")
        return data
