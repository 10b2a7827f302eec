"""Evaluation: answers, judges, metrics, jailbreak wrappers and reports (spec section 6)."""
