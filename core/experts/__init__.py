"""The step-routed experts: the multi-LoRA layer (math only), stage -> expert routing, the
trainable marker-token rows, attaching and freezing them on a causal LM, and PEFT export.

May import: torch, transformers, peft, safetensors, core.config and core.stages.
"""
