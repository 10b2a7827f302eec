"""Data the method consumes: generated chain records (ChainRecord: stages, attempts, verdicts,
curation) and the chains training reads with their JSONL files, question sets and their
readers, train/eval leakage checks, and the training dataset (token ids, labels, stage ids,
step-skip masks).

May import: torch, transformers (tokenizers only), core.config and core.stages.
"""
