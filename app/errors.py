"""Turn the project's own errors into messages the user sees (gr.Error), in one place.

Why: core and jobs raise ValueError / LookupError / FileNotFoundError whose text already names
the problem and the fix (JobConfigError, ModelSourceError and QuestionImportError are
ValueErrors). In the browser such an exception would show as a bare "Error"; wrapped, the user
reads the message itself. Anything else is a bug and keeps its traceback in the server log.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

USER_ERRORS = (ValueError, LookupError, FileNotFoundError, RuntimeError)
#: These carry the whole story in their message; others (RuntimeError) also keep their traceback in the log.
PLAIN_ERRORS = (ValueError, LookupError, FileNotFoundError)


def user_facing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an event handler (plain or generator) so USER_ERRORS reach the page as gr.Error.
    The signature is kept, so the endpoint's parameter names stay those of `fn`."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except USER_ERRORS as error:
                raise gr.Error(str(error), print_exception=not isinstance(error, PLAIN_ERRORS)) from error
        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as error:
            raise gr.Error(str(error), print_exception=not isinstance(error, PLAIN_ERRORS)) from error
    return call
