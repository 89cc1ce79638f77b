"""The one-click demo runs: Home's starter, the Noise lab's denoiser, the GAN studio's short DCGAN, the explorer's
2-D VAE.

Each demo has a *step* budget, not a time budget: on a busy machine (a hosted server always is)
a time budget buys fewer steps and hands the learner a worse model, while a step budget gives the
same model, later. The numbers below were chosen by measuring (README, "Measured"): the starter
reaches about 0.41× PCA's test error on mnist-5k for seeds 0–3, the DCGAN about 0.17× the
untrained generator's Fréchet distance (0.14–0.17 for seeds 0–2), the 2-D VAE a latent plane in
which a 5-nearest-neighbour classifier finds the right digit about 60 % of the time.

LATENT_LAB_DEMO_SCALE (a number > 0, default 1) multiplies every demo's steps: 0.25 for a slow
laptop in a hurry, 0.1 in tests that only need a run to finish.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

DEMO_SCALE_ENV = "LATENT_LAB_DEMO_SCALE"


@dataclass(frozen=True)
class Demo:
    model: str
    model_config: dict
    train: dict  # TrainConfig fields; "steps" is the budget the scale multiplies
    what: str  # a few words for the button's help: what it trains, and what it is for

    def settings(self, scale: float = 1.0) -> tuple[str, dict, dict]:
        """(model, model_config, train) of a run of this demo, its step budget × `scale` (at least 10 steps)."""
        train = dict(self.train)
        train["steps"] = max(10, round(train["steps"] * scale))
        return self.model, dict(self.model_config), train

    def summary(self, scale: float = 1.0) -> str:
        """"conv_ae, latent 32, 800 steps": what the button starts."""
        model, config, train = self.settings(scale)
        latent = f", latent {config['latent_dim']}" if "latent_dim" in config else ""
        return f"{model}{latent}, {train['steps']:,} steps"


DEMOS = {
    # conv AE, latent 32: one-cycle to a high peak rate gets the most out of few steps (0.41× PCA at 800
    # steps, against 0.50× for a constant 2e-3 at 600)
    "starter": Demo("conv_ae", {"latent_dim": 32},
                    {"steps": 800, "batch_size": 64, "lr": 1e-2, "schedule": "one_cycle"},
                    "a conv autoencoder with a 32-number code, the page's starter"),
    # the starter's network and budget, trained on corrupted inputs: each image one of the Noise lab's four
    # corruptions at a random level across its whole range. Beside the starter it is a controlled experiment:
    # only the noise differs. It beats the starter and PCA on every kind except at the lightest levels.
    "denoiser": Demo("conv_ae", {"latent_dim": 32, "noise": "mixed", "noise_level": 1.0},
                     {"steps": 800, "batch_size": 64, "lr": 1e-2, "schedule": "one_cycle"},
                     "the starter's conv autoencoder, trained to rebuild clean images from randomly corrupted ones"),
    # DCGAN with its own train defaults (Adam 2e-4, β1 0.5, batches of 64); about 0.17× the untrained
    # generator's FID at 400 steps, all but one class covered
    "dcgan": Demo("dcgan", {}, {"steps": 400}, "a small DCGAN whose samples you can replay"),
    # a VAE with a 2-number code: the explorer's manifold grid and the map need nothing in between
    "vae_2d": Demo("vae", {"latent_dim": 2}, {"steps": 1000, "batch_size": 128, "lr": 3e-3},
                   "a VAE with a 2-number code, so its whole latent space is one picture"),
}


def demo_scale() -> float:
    """LATENT_LAB_DEMO_SCALE as a number > 0 (1 when unset); a ValueError that names the variable otherwise."""
    raw = os.environ.get(DEMO_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{DEMO_SCALE_ENV}={raw!r} is not a positive number; unset it for the demos' own budgets")
    return value


def demo_settings(name: str, scale: float | None = None) -> tuple[str, dict, dict]:
    """(model, model_config, train) of demo `name`, scaled by `scale` (LATENT_LAB_DEMO_SCALE when None)."""
    return DEMOS[name].settings(demo_scale() if scale is None else scale)
