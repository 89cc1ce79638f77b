"""Data: dataset sources → tensors, and the transforms every layer above shares.

    dataset.py     the Dataset record (x (N, 1, 28, 28) in [0, 1], labels, class names), splits
    catalogue.py   every dataset by name (mnist-5k, fashion-mnist, mnist, folder:, npz:, upload:), loading
    idx.py         MNIST's IDX file format, and `fetch_mnist` (the one downloader, run on purpose)
    files.py       the user's own images (folder:DIR) and arrays (npz:FILE)
    uploads.py     datasets uploaded from the browser (a .zip of images, an .npz, or a .csv of series), per workspace
    archive.py     reading an untrusted .zip safely (shared with the run import)
    noise.py       corruptions (Gaussian, salt-and-pepper, masking, occlusion) for denoising
    preprocess.py  a drawing or an uploaded photo → a 28×28 MNIST-style image
    images.py      images → PNG grids
"""

from engine.data.catalogue import (DEFAULT_DATASET, FASHION_CLASSES, FASHION_MNIST_SYSTEM_DIR, check_dataset,
                                   clear_cache, data_dir, dataset_classes, fashion_mnist_dir, list_datasets,
                                   load_dataset, mnist_dir, registered_datasets, upload_owner)
from engine.data.dataset import IMAGE_SIZE, DataError, Dataset, DatasetInfo
from engine.data.idx import IDX_FILES, MNIST_BASE_URL, MNIST_CLASSES, fetch_mnist, read_idx
from engine.data.uploads import (Skipped, UploadLimitError, UploadResult, delete_upload, list_uploads, max_upload_bytes,
                                 max_uploads, remove_workspace_uploads, save_upload, uploads_dir,
                                 workspace_upload_bytes)

__all__ = ["DEFAULT_DATASET", "FASHION_CLASSES", "FASHION_MNIST_SYSTEM_DIR", "IDX_FILES", "IMAGE_SIZE",
           "MNIST_BASE_URL", "MNIST_CLASSES", "DataError", "Dataset", "DatasetInfo", "check_dataset", "clear_cache",
           "data_dir", "dataset_classes", "fashion_mnist_dir", "fetch_mnist", "list_datasets", "load_dataset",
           "mnist_dir", "read_idx", "registered_datasets", "Skipped", "UploadLimitError", "UploadResult",
           "delete_upload", "list_uploads", "max_upload_bytes", "max_uploads", "remove_workspace_uploads",
           "save_upload", "upload_owner", "uploads_dir", "workspace_upload_bytes"]
