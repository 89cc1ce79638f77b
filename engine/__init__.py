"""Latent Lab's engine: everything but the pages. Never imports streamlit.

Its subpackages are its layers, each using only the ones above it in this list:

    data/    dataset sources → tensors; noise, drawings and photos → 28×28 images; PNG grids
    models/  the model registry and every model family; each model declares what it can do
    runs/    the run directory (config, typed status and metrics, checkpoints), jobs, transfer
    eval/    metrics, the PCA baseline, the judge of generated images, ROC
    train/   the one training loop and a trainer per model family
    lab/     one back-end per page, named after it
    cli.py   python -m engine …

device.py (CPU/CUDA/MPS and thread counts) is the one module every layer may use.
"""

__version__ = "0.2.0"
