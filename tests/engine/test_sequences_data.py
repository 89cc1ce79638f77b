"""Sequence datasets: sktime's bundled files read offline (checked against sktime's own reader), sequential MNIST,
the windows of a long series, and the user's CSV with its malformed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data import DataError, check_dataset, dataset_classes, list_datasets, load_dataset
from engine.data import sequences as seq


@pytest.mark.parametrize("name", seq.SEQUENCE_DATASETS)
def test_every_bundled_dataset_loads_offline(name):
    ds = load_dataset(name)
    assert ds.kind == "sequence" and ds.x_train.ndim == 3 and ds.x_train.shape[1:] == ds.x_test.shape[1:]
    assert torch.isfinite(ds.x_train).all() and torch.isfinite(ds.x_test).all()
    assert len(ds.classes) == dataset_classes(name)
    assert set(ds.y_test.unique().tolist()) <= set(range(len(ds.classes)))
    if name in seq.CLASSIFICATION:  # standardised per channel on the train split
        assert ds.x_train.mean().abs() < 1e-3 and abs(float(ds.x_train.std()) - 1) < 1e-2


def test_ts_reader_matches_sktimes_own_loader():
    from sktime.datasets import load_from_tsfile

    for folder in ("GunPoint", "BasicMotions"):
        path = seq.sktime_data_dir() / folder / f"{folder}_TRAIN.ts"
        x, y, classes = seq.read_ts(path)
        ref_x, ref_y = load_from_tsfile(str(path), return_data_type="numpy3D")  # (N, C, T)
        np.testing.assert_allclose(x, ref_x.transpose(0, 2, 1), rtol=1e-6)
        assert [classes[i].lower() for i in y] == [str(v).lower() for v in ref_y]  # sktime lower-cases names


def test_unequal_lengths_are_padded_with_the_last_value():
    x, _, classes = seq.read_ts(seq.sktime_data_dir() / "JapaneseVowels" / "JapaneseVowels_TRAIN.ts")
    assert x.shape == (270, 26, 12) and len(classes) == 9
    first = seq.sktime_data_dir() / "JapaneseVowels" / "JapaneseVowels_TRAIN.ts"
    line = next(ln for ln in first.read_text().splitlines() if ln and ln[0].isdigit())
    steps = len(line.split(":")[0].split(","))  # the first series' own length
    assert steps < 26 and (x[0, steps:] == x[0, steps - 1]).all()


def test_sequential_mnist_reads_each_digit_row_by_row():
    digits, rows = load_dataset("mnist-5k"), load_dataset("seq-mnist")
    assert rows.x_train.shape == (4000, 28, 28)
    assert torch.equal(rows.x_test[3], digits.x_test[3, 0]) and torch.equal(rows.y_test, digits.y_test)


def test_long_series_train_on_their_normal_start_and_test_every_window():
    ds = load_dataset("ecg-mitdb")
    s = ds.series
    first_anomaly = int(np.argmax(s.labels))
    assert s.train_end <= first_anomaly and len(s.values) == 7500
    assert ds.x_train.shape[1:] == (s.window, 1) and (ds.y_train == 0).all()
    # test window k starts at k·TEST_STRIDE; its class says whether it overlaps the labelled anomaly
    k = int(torch.nonzero(ds.y_test)[0])
    start = k * seq.TEST_STRIDE
    assert s.labels[start:start + s.window].any() and not s.labels[start - seq.TEST_STRIDE:start - seq.TEST_STRIDE
                                                                     + s.window].all()
    w = s.values[start:start + s.window]
    np.testing.assert_allclose(ds.x_test[k, :, 0].numpy(), (w - w.mean()) / w.std(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s.windows(seq.TEST_STRIDE), ds.x_test.numpy())  # what the anomaly view scores


def test_sequence_datasets_stay_out_of_the_image_listing_but_are_known_to_the_catalogue():
    assert not {i.name for i in list_datasets()} & set(seq.SEQUENCE_DATASETS)
    check_dataset("gunpoint")
    with pytest.raises(DataError, match="unknown dataset"):
        check_dataset("gun-point")


# ---------------------------------------------------------------------------------------------
# the user's CSV


def write(tmp_path, text: str, name="series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return f"csv:{path}"


def test_csv_of_labelled_rows(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["label," + ",".join(f"t{i}" for i in range(10))]
    for k in range(20):
        lines.append(f"{'up' if k % 2 else 'down'}," + ",".join(f"{v:.3f}" for v in rng.normal(size=10)))
    ds = load_dataset(write(tmp_path, "\n".join(lines)))
    assert ds.classes == ["down", "up"] and ds.x_train.shape == (16, 10, 1) and ds.x_test.shape == (4, 10, 1)
    assert sorted(torch.cat([ds.y_train, ds.y_test]).tolist()) == [0] * 10 + [1] * 10


def test_csv_of_one_long_series_with_anomaly_labels(tmp_path):
    values = np.sin(np.arange(600) / 5)
    labels = np.zeros(600, dtype=int)
    labels[450:460] = 1
    text = "value,label\n" + "\n".join(f"{v:.4f},{lab}" for v, lab in zip(values, labels))
    ds = load_dataset(write(tmp_path, text))
    assert ds.series is not None and ds.series.train_end <= 450 and ds.classes == ["normal", "anomaly"]
    assert ds.y_test.sum() > 0


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("1,2,3,4,5\n", "holds 1 data row"),
    ("1,2,3,4,5\n1,2,3,4\n", "row 2 has 4 values but the first data row has 5"),
    ("1,2,3,4,5\n1,2,x,4,5\n", "'x' is not a number"),
    ("1,2,3,4,5\n1,2,nan,4,5\n", "NaN or infinity"),
    ("1,2\n3,4\n5,6\n", "at least 4 steps"),
    ("value,label\n" + "\n".join(f"{i},2" for i in range(50)), "0 \\(normal\\) or 1"),
])
def test_malformed_csvs_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_dataset(f"csv:{path}")


def test_a_missing_or_binary_csv_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="is not a file"):
        load_dataset(f"csv:{tmp_path / 'nope.csv'}")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01" * 10)
    with pytest.raises(DataError, match="not UTF-8"):
        seq.read_csv(tmp_path / "bin.csv")
