"""The Gradio app, UI only: tab builders (app/tabs/) call a services facade (app/services.py,
app/evaluation_services.py) that reads and writes through jobs/ queries and commands, and talks to
core/ only for chat (app/chat_runtime.py). The read-only demo page is app/demo.py.

May import: gradio, jobs (never jobs.records), core. Never sqlalchemy or cli.
"""
