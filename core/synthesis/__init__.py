"""Self-generation of AlignCoT chains (spec section 2): the stage prompt templates, the adaptive
pipeline, its safety checkers (core.synthesis.checkers) and label-aware verification, and the
text generators (local model or OpenAI-compatible URL).

May import: core.config, core.stages, core.model_source, core.data, core.decoding, and the
refusal judge of core.evaluation (label-aware verification).
"""
