"""One back-end per page, each named after its page (pages/draw.py ↔ engine/lab/draw.py).

A back-end turns a page's question into numbers, arrays and PNG bytes, using the core below it
(data, models, runs, eval, train); nothing in the core imports from here, and nothing here knows
about widgets, colours or chart titles.
"""
