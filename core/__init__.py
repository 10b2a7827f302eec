"""The MoTE method, importable and testable without the UI, the database or the scheduler.

Subpackages: experts, data, training, decoding, synthesis, evaluation, serving; beside them
config.py (settings), stages.py (the four stages and their markers), model_source.py (where base
models come from). core imports none of app, jobs, cli, gradio, sqlalchemy, apscheduler.
"""
