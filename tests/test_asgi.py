"""refdesk.asgi: what the web processes set up when they load the application."""

import gc
import importlib
import sys


def test_loading_the_application_freezes_what_it_loaded():
    """Startup objects go to the collector's permanent generation, so full
    collections under load do not walk them (~100 ms pauses before)."""
    import refdesk.asgi

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    importlib.reload(refdesk.asgi)
    assert gc.get_freeze_count() > 10_000


def test_the_event_loop_gets_the_gil_back_within_a_millisecond():
    import refdesk.asgi  # noqa: F401

    assert sys.getswitchinterval() == 0.001
