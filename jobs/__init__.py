"""Persistence and scheduling: the SQLAlchemy records and migrations, the queue and its worker
processes, job specs, and the queries (jobs.queries, jobs.chain_queries) and commands
(jobs.commands) through which the app and the CLI read and change stored results.

May import: core, SQLAlchemy, APScheduler, Alembic. Never app, gradio or a CLI module; what the
app gets back are frozen jobs.views snapshots and the jobs.kinds enums, which need no SQLAlchemy.
"""
