"""Live training curves that are kept when the notebook is saved.

A plotly ``FigureWidget`` updates in place while a loop runs, but the notebook saves only the
widget's *first* state (empty traces; later points travel as messages), so a saved notebook, the
HTML book and GitHub show an empty plot. ``LiveFigure`` shows the widget through a display handle
and ``freeze()`` swaps it for a plain figure holding the final data: live in Lab, complete on disk.

    live = LiveFigure(go.Figure(layout=dict(title="loss")))
    live.fig.add_scatter(x=[], y=[])
    for step in ...: live.fig.data[0].y += (loss,)
    live.freeze()
"""
from __future__ import annotations

import plotly.graph_objects as go


class LiveFigure:
    """``fig``: the live ``go.FigureWidget`` (update its traces); ``freeze()`` when the loop ends."""

    def __init__(self, fig: go.Figure | go.FigureWidget | None = None):
        from IPython.display import display
        self.fig = fig if isinstance(fig, go.FigureWidget) else go.FigureWidget(fig)
        self._handle = display(self.fig, display_id=True)

    def freeze(self) -> None:
        """Replace the widget's output with a static copy of the figure as it is now (returns None,
        so a cell ending in ``live.freeze()`` does not display the figure a second time)."""
        import plotly.io as pio
        static = go.Figure(self.fig.to_dict())
        if self._handle is not None:  # None outside IPython (display printed nothing)
            # A raw mime bundle: a Figure object would display itself through _ipython_display_,
            # which ignores the display id and appends a second output instead of replacing.
            bundle = pio.renderers["plotly_mimetype"].to_mimebundle(static.to_dict())
            self._handle.update({**bundle, "text/plain": f"<Figure: {self.fig.layout.title.text or 'live'}>"}, raw=True)
