"""Category and scorecard rules: validated data (never code), evaluated against the facts of a
finished call. Pure Python over plain dataclasses; the services load facts and store results."""
