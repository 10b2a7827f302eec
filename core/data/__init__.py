"""Data the method consumes: chain records and their JSONL files, question sets and their
readers, train/eval leakage checks, and the training dataset (token ids, labels, stage ids,
step-skip masks).

May import: torch, transformers (tokenizers only), core.config and core.stages.
"""
