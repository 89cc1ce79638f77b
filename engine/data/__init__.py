"""Data: dataset sources → tensors, and the transforms every layer above shares.

    dataset.py     the Dataset record (x (N, 1, 28, 28) in [0, 1], labels, class names), splits
    catalogue.py   every dataset by name (mnist-5k, fashion-mnist, mnist, folder:, npz:), loading
    idx.py         MNIST's IDX file format, and `fetch_mnist` (the one downloader, run on purpose)
    files.py       the user's own images (folder:DIR) and arrays (npz:FILE)
    noise.py       corruptions (Gaussian, salt-and-pepper, masking, occlusion) for denoising
    preprocess.py  a drawing or an uploaded photo → a 28×28 MNIST-style image
    images.py      images → PNG grids
"""

from engine.data.catalogue import (DEFAULT_DATASET, FASHION_CLASSES, FASHION_MNIST_SYSTEM_DIR, check_dataset,
                                   clear_cache, data_dir, dataset_classes, fashion_mnist_dir, list_datasets,
                                   load_dataset, mnist_dir, registered_datasets)
from engine.data.dataset import IMAGE_SIZE, DataError, Dataset, DatasetInfo
from engine.data.idx import IDX_FILES, MNIST_BASE_URL, MNIST_CLASSES, fetch_mnist, read_idx

__all__ = ["DEFAULT_DATASET", "FASHION_CLASSES", "FASHION_MNIST_SYSTEM_DIR", "IDX_FILES", "IMAGE_SIZE",
           "MNIST_BASE_URL", "MNIST_CLASSES", "DataError", "Dataset", "DatasetInfo", "check_dataset", "clear_cache",
           "data_dir", "dataset_classes", "fashion_mnist_dir", "fetch_mnist", "list_datasets", "load_dataset",
           "mnist_dir", "read_idx", "registered_datasets"]
