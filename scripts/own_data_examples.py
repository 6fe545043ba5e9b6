"""Data and baselines for scripts/own-data-examples.sh (issue 12's measured examples).

Two sets that ship inside scikit-learn (no download):
  * rgb: 32x32 RGB patches cut from sklearn's two sample photos (china.jpg, flower.jpg),
    written as PNG folders; training patches from the left 70% of each photo, test
    patches from the right 30%, so no test pixel was seen in training. Baseline: PCA
    with as many components as the autoencoder's code, PSNR on the test patches.
  * table: the Wisconsin breast-cancer table (569 rows, 30 features) as a one-class
    problem: a seeded 70% of the benign rows train, the other benign rows and every
    malignant row test (label 1 = malignant = anomaly). Baselines: IsolationForest
    (seeds 0-4) and PCA reconstruction error on standardised features, ROC-AUC.

Usage:
  python own_data_examples.py prepare OUT
  python own_data_examples.py rgb-pca OUT K
  python own_data_examples.py table-baselines OUT
  python own_data_examples.py auc SCORES.csv      (ae anomaly score's CSV with a label column)
"""

import csv
import os
import sys

import numpy as np
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_sample_images
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

PATCH = 32
TRAIN_PER_PHOTO = int(os.environ.get("TRAIN_PER_PHOTO", 1500))
TEST_PER_PHOTO = 300


def patches(photo, n, lo, hi, rng):
    """`n` random PATCHxPATCH patches whose columns lie in [lo, hi) of `photo`."""
    h, _, _ = photo.shape
    ys = rng.integers(0, h - PATCH + 1, n)
    xs = rng.integers(lo, hi - PATCH + 1, n)
    return np.stack([photo[y : y + PATCH, x : x + PATCH] for y, x in zip(ys, xs)])


def write_folder(dir_, imgs):
    os.makedirs(dir_, exist_ok=True)
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(os.path.join(dir_, f"{i:05d}.png"))


def read_folder(dir_):
    names = sorted(os.listdir(dir_))
    return np.stack([np.asarray(Image.open(os.path.join(dir_, n)).convert("RGB")) for n in names])


def prepare(out):
    rng = np.random.default_rng(0)
    train, test = [], []
    for photo in load_sample_images().images:
        w = photo.shape[1]
        cut = int(w * 0.7)
        train.append(patches(photo, TRAIN_PER_PHOTO, 0, cut, rng))
        test.append(patches(photo, TEST_PER_PHOTO, cut, w, rng))
    write_folder(os.path.join(out, "rgb", "train"), np.concatenate(train))
    write_folder(os.path.join(out, "rgb", "test"), np.concatenate(test))

    data = load_breast_cancer()
    x, y = data.data, 1 - data.target  # sklearn: 0 malignant, 1 benign -> 1 = anomaly
    names = [n.replace(" ", "_") for n in data.feature_names]
    benign = np.flatnonzero(y == 0)
    rng = np.random.default_rng(0)
    rng.shuffle(benign)
    n_train = int(len(benign) * 0.7)
    train_rows = np.sort(benign[:n_train])
    test_rows = np.sort(np.concatenate([benign[n_train:], np.flatnonzero(y == 1)]))
    os.makedirs(os.path.join(out, "table"), exist_ok=True)
    for name, rows in (("train", train_rows), ("test", test_rows)):
        with open(os.path.join(out, "table", f"{name}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names + ["label"])
            for r in rows:
                w.writerow([repr(float(v)) for v in x[r]] + [int(y[r])])
    print(
        f"rgb: {2 * TRAIN_PER_PHOTO} train / {2 * TEST_PER_PHOTO} test patches of "
        f"{PATCH}x{PATCH}x3; table: {len(train_rows)} benign train rows, "
        f"{len(test_rows)} test rows ({int(y[test_rows].sum())} malignant)"
    )


def rgb_pca(out, k):
    tr = read_folder(os.path.join(out, "rgb", "train")).reshape(-1, PATCH * PATCH * 3) / 255.0
    te = read_folder(os.path.join(out, "rgb", "test")).reshape(-1, PATCH * PATCH * 3) / 255.0
    pca = PCA(n_components=k, svd_solver="full").fit(tr)
    rec = np.clip(pca.inverse_transform(pca.transform(te)), 0.0, 1.0)
    mse = float(np.mean((rec - te) ** 2))
    print(f"PCA-{k} test psnr {10 * np.log10(1.0 / mse):.2f} dB (mse {mse:.5f})")


def read_table(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    a = np.array(rows[1:], dtype=np.float64)
    return a[:, :-1], a[:, -1].astype(int)


def table_baselines(out):
    xtr, _ = read_table(os.path.join(out, "table", "train.csv"))
    xte, yte = read_table(os.path.join(out, "table", "test.csv"))
    aucs = []
    for seed in range(5):
        forest = IsolationForest(random_state=seed).fit(xtr)
        aucs.append(roc_auc_score(yte, -forest.score_samples(xte)))
    print("IsolationForest ROC-AUC seeds 0-4: " + " ".join(f"{a:.4f}" for a in aucs)
          + f" (mean {np.mean(aucs):.4f})")
    mu, sd = xtr.mean(0), xtr.std(0)
    ztr, zte = (xtr - mu) / sd, (xte - mu) / sd
    for k in (2, 5, 10):
        pca = PCA(n_components=k, svd_solver="full").fit(ztr)
        err = ((pca.inverse_transform(pca.transform(zte)) - zte) ** 2).mean(1)
        print(f"PCA-{k} reconstruction error ROC-AUC {roc_auc_score(yte, err):.4f}")


def auc(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    y = np.array([int(r["label"]) for r in rows])
    s = np.array([float(r["score"]) for r in rows])
    print(f"{roc_auc_score(y, s):.4f}")


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "prepare":
        prepare(rest[0])
    elif cmd == "rgb-pca":
        rgb_pca(rest[0], int(rest[1]))
    elif cmd == "table-baselines":
        table_baselines(rest[0])
    elif cmd == "auc":
        auc(rest[0])
    else:
        sys.exit(__doc__)
