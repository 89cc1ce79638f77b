"""Latent Lab's engine: datasets, models, training, runs and jobs.

Never imports streamlit, so it works the same from the CLI, notebooks, tests and the app.
"""

__version__ = "0.1.0"
