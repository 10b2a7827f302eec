"""Evaluation (spec section 6): the prompts to ask (question sets and jailbreak wrappers), the
judges (string-match, label-probability LLM, classifier) and their validation against labelled
answers, degenerate answers, the paper's metrics with bootstrap and paired intervals, and reports.

May import: core.config, core.stages, core.decoding, core.data, core.model_source.
"""
