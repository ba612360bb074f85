"""A setting's value as the pages show it."""
import json
from decimal import Decimal


def shown(value) -> str:
    """None and "" as a dash, booleans as yes/no, decimals and floats without trailing zeros, JSON as JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
