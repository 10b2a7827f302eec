"""How a model writes text: sampling, chain programs (one stage at a time, experts switched at
each marker), the batched scheduler with its KV-cache row splicing, and chat subjects (a
trained run or a base model behind one interface).

May import: core.config, core.stages, core.model_source, core.experts, core.data and core.training.
"""
