"""Event wiring, one module per tab (plus ``cross_tab`` for the events that join tabs).

Handlers return ``{component: update}`` dicts: each output is named where it is set, and a component
left out of the dict is left as it is (no positional lists whose order must match the wiring)."""

from typing import Any

import gradio as gr


def unchanged(*components: Any) -> dict[Any, Any]:
    """ "Change nothing", as a dict Gradio reads as updates (an empty dict would be one output value)."""
    return {component: gr.skip() for component in components}
