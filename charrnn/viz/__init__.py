"""Seeing what a model does on a text: the `charrnn viz` page (`page`), the units worth showing
(`units`) and the files LSTMVis reads (`lstmvis`).

The page's HTML, script and style are package data under `assets/`, never Python strings. Nothing
here prints or writes outside the paths it is given: the CLI decides where things go.
"""

from charrnn.viz.page import Page, build_page
from charrnn.viz.units import Layout

__all__ = ["Layout", "Page", "build_page"]
