"""Inference peer of `cargo xtask bench`: encode and reconstruct the 10k MNIST test images
in batches (1024 by default) with the PyTorch twins of ae's models, on the CPU.

usage: python torch_infer.py [--variants vanilla,conv,vae] [--reps N] [--batch B] [--limit N]
MNIST is read from $MNIST_DIR (t10k-images-idx3-ubyte.gz). The batches are made before
timing (ae's side does the same); each (variant, op) gets one untimed warm-up pass, then
N timed passes over all the batches under torch.no_grad(). One line per measurement:
    infer <variant> <op> rep <i> seconds <s>
plus one `torch <version> threads <n>` line first. Weights are PyTorch's default
initialisation: the time of these dense and conv layers does not depend on the values.
"""
import argparse, gzip, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_test_images(limit):
    path = os.path.join(os.environ.get("MNIST_DIR", "data/mnist"), "t10k-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    x = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    if limit:
        x = x[:limit]
    return torch.tensor(x, dtype=torch.float32).unsqueeze(1) / 255.0  # [N, 1, 28, 28]


class Dense(nn.Module):
    """ae's `vanilla`: 784-128-64-32-64-128-784, ReLU everywhere (code included), sigmoid out."""

    def __init__(self):
        super().__init__()
        dims = [784, 128, 64, 32]
        self.enc = nn.Sequential(*[m for i in range(3) for m in (nn.Linear(dims[i], dims[i + 1]), nn.ReLU())])
        self.dec = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 784))
        self.flat = True

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)


class Conv(nn.Module):
    """ae's `conv` (and torch_variants.py conv): Conv32-pool x2, ConvT32 s2 x2, Conv1."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.dec = nn.Sequential(nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                                 nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                                 nn.Conv2d(32, 1, 3, padding=1))
        self.flat = False

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)


class Vae(nn.Module):
    """ae's `vae` (PyTorch's example, torch_variants.py vae): 784-400-20; encode returns mu."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400); self.mu = nn.Linear(400, 20); self.lv = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400); self.fc4 = nn.Linear(400, 784)
        self.flat = True

    def encode(self, x):
        h = F.relu(self.fc1(x))
        mu, _logvar = self.mu(h), self.lv(h)
        return mu

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))


MODELS = {"vanilla": Dense, "conv": Conv, "vae": Vae}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variants", default="vanilla,conv,vae")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(0)
    x = load_test_images(a.limit)
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
    for name in a.variants.split(","):
        if name not in MODELS:
            sys.exit(f"unknown variant {name!r} (expected one of {', '.join(MODELS)})")
        m = MODELS[name]().eval()
        data = x.reshape(len(x), 784) if m.flat else x
        batches = [b.contiguous() for b in data.split(a.batch)]
        ops = {"encode": m.encode, "reconstruct": lambda b: torch.sigmoid(m.decode(m.encode(b)))}
        with torch.no_grad():
            for op, f in ops.items():
                for b in batches:  # warm-up
                    f(b)
                for rep in range(a.reps):
                    t = time.perf_counter()
                    for b in batches:
                        f(b)
                    print(f"infer {name} {op} rep {rep} seconds {time.perf_counter() - t:.6f}", flush=True)


if __name__ == "__main__":
    main()
