"""Evaluation: how good a model is, and what it does to data.

    metrics.py  reconstruction scores (MSE, PSNR, BCE, ELBO), the PCA baseline, kNN on codes
    codes.py    a loaded run applied to images and codes, as numpy (encode, decode, neighbours)
    roc.py      anomaly scores judged: ROC, AUROC, a threshold's precision and recall
    judge.py    the judge classifier of generated images: FID-style distance, inception-style score
"""
