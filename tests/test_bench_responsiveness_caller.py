"""The responsiveness bench's streamed caller: it gets an endpoint's result in the caller's Gradio
session, and a call that ends in an error raises instead of being timed as a fast answer."""
from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client

from bench.bench_responsiveness import StreamedCaller


@pytest.fixture
def app():
    with gr.Blocks() as demo:
        remembered = gr.Dropdown(choices=[], allow_custom_value=False)
        shown = gr.Textbox()
        # A session-scoped choice list, as the Train tab's run list: valid only after `choose` ran.
        gr.Button().click(lambda: gr.update(choices=["a", "b"], value="a"), None, remembered, api_name="choose")
        gr.Button().click(lambda value: f"picked {value}", remembered, shown, api_name="show")
        gr.Button().click(lambda: 1 / 0, None, shown, api_name="fail")
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield demo
    demo.close()


def test_a_streamed_call_runs_in_the_clients_session_and_an_error_raises(app):
    client = Client(app.local_url, verbose=False)
    caller = StreamedCaller(app.local_url, client.session_hash)
    with pytest.raises(RuntimeError, match="/show did not complete"):
        caller("/show", ("b",))  # not among this session's choices yet
    client.predict(api_name="/choose")
    caller("/show", ("b",))  # now valid in the shared session
    with pytest.raises(RuntimeError, match="/fail did not complete"):
        caller("/fail", ())
    caller.close()
