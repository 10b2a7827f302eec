"""Self-generation of AlignCoT chains (spec section 2): the stage prompt templates, the adaptive
pipeline with its safety checks, and the text generators (local model or OpenAI-compatible URL).

May import: core.config, core.stages, core.model_source, core.data and core.decoding.
"""
