"""How a model writes text: sampling (sampling.py), prompts and streamed text (text.py), chain
programs (chain_programs.py: one stage at a time, experts switched at each marker), plain-text
completions (completions.py), and the ONE batched scheduler every program runs on (scheduler.py,
with its KV-cache row splicing in kv_rows.py; a single chain is a batch of one). On top: chat
subjects (subjects.py: a trained run or a base model behind one interface) named by a SubjectRef
(subject_ref.py: 'base:MODEL', 'job:ID' or a run folder).

May import: core.config, core.stages, core.model_source, core.experts, core.data and core.training;
never core.synthesis, core.evaluation or core.serving (they build on it).
"""
