"""Training: one loop with named hooks, and a trainer per model family.

    loop.py            train_run(run) and the Loop: budget, logging, snapshots, checkpoints, resume
    trainer.py         the hooks a family trainer provides, and what the families share
    reconstruction.py  autoencoders and PCA
    adversarial.py     GANs: two optimizers, fixed-z snapshots, the judge's scores while training
    sequences.py       sequence autoencoders on series (T, C): replayable series snapshots
"""

from engine.train.loop import TRAINERS, Loop, train_run
from engine.train.trainer import fixed_test_batch

__all__ = ["TRAINERS", "Loop", "fixed_test_batch", "train_run"]
