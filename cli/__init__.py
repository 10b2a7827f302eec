"""The command line: one module per verb group, each with `add_parser(subparsers)` and `run(args)`.

launch.py lists these modules and dispatches to them; a module here turns flags into calls on
jobs/ (submit, follow, inspect), core/ (demo, ask, serve, questions) and app/ (serve the UI).
cli may import app, jobs and core; app, jobs and core never import cli.
"""
