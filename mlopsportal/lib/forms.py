"""Small helpers for forms."""


def form_errors_text(form) -> str:
    """Every error of a bound, invalid form, in one line (for a flash message)."""
    return " ".join(error for errors in form.errors.values() for error in errors)
