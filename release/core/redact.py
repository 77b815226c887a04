"""The one rule for secrets (``cards.redact``: the lowest package holds it, so the
cards' own commands write through it too), under the pipeline's name for it."""

from cards.redact import SECRET_VARIABLES, redact, secret_in

__all__ = ["SECRET_VARIABLES", "redact", "secret_in"]
