"""The OpenAI-compatible chat-completions server for a trained run or a base model, and its
request/response schema.

May import: fastapi, uvicorn, core.decoding and core.stages.
"""
