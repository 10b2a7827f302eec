"""Training the experts: the accelerate loop, resumable safetensors checkpoints, the run recipe
(setup, fit, save) that the CLI, jobs and tests call, and memory/time estimates.

May import: core.config, core.stages, core.model_source, core.experts and core.data.
"""
