"""Training throughput and memory of the trainer on a folder of JPEG files (issue 10).

1. Throughput: one epoch of HyP² with AlexNet (random init: no weights are downloaded) at 224 on N generated
   500x375 JPEG files, through the project's trainer (streaming loader, the paper's transforms, workers), against a
   plain reference loop written the way DeepHash-pytorch writes it: an image-list Dataset that opens each file with
   PIL and applies torchvision transforms (Resize((224, 224)), RandomHorizontalFlip, ToTensor, Normalize), a
   DataLoader with the same workers and batch size, the same network, loss and SGD. Both are timed from the start of
   the epoch (workers started) to its end; images/s of each and their ratio (target >= 1.0).
2. Peak memory: GPQ (iteration-based, `iterations` steps) with an unlabeled path list of N and of 10 N items (the
   paths repeat), each run in a fresh process; peak RSS = the process's VmHWM + the largest DataLoader worker's
   (target ratio <= 1.2).

    python benchmarks/train_speed.py                      # 2,000 images, batch 32, 2 workers, CPU
    python benchmarks/train_speed.py --images 300 --quick # smoke run
    python benchmarks/train_speed.py --device cuda        # on a GPU (AMP on by default there)

The last line is `throughput_ratio=X rss_ratio=Y`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n distinct 500x375 JPEG files (smooth colour fields with noise, ~30 kB each), made once per folder."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500]
    names = []
    for i in range(n):
        name = f"im{i:05d}.jpg"
        names.append(name)
        if (folder / name).is_file():
            continue
        a, b, c = rng.uniform(0.005, 0.03, 3)
        base = np.stack([np.sin(a * xx + i), np.cos(b * yy), np.sin(c * (xx + yy))], -1)
        pixels = (127 + 100 * base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name, quality=85)
    return names


def write_set(folder: Path, image_root: Path, paths: list[str], n_classes: int = 10, image_size: int = 256):
    from hashbench.data import write_dataset

    rng = np.random.default_rng(1)
    labels = (rng.random((len(paths), n_classes)) < 0.25).astype(np.uint8)
    labels[np.arange(len(paths)), rng.integers(0, n_classes, len(paths))] = 1
    write_dataset(folder, name="jpegs", labels=labels, class_names=[str(c) for c in range(n_classes)],
                  image_paths=paths, image_root=str(image_root), image_size=image_size)


# ------------------------------------------------------------------------------------------------- throughput
def ours(raw: Path, args) -> float:
    import torch

    from hashbench.data import open_dataset
    from hashbench.methods import get_method
    from hashbench.pipeline import dataset_info, train_set
    from hashbench.training.runtime import runtime_params

    with open_dataset(raw) as ds:
        method = get_method("hyp2")(16, 0, {"backbone": "alexnet", "pretrained": False, "input_size": 224,
                                            "augment": "paper", "epochs": 1, "batch_size": args.batch,
                                            "downsample": 1}, dataset_info(ds))
        data = train_set(type(method), ds, {"train": np.arange(ds.n_items)})
    method.runtime = runtime_params({"device": args.device, "workers": args.workers}, checkpoints=None)
    torch.manual_seed(0)
    start = time.perf_counter()
    method.fit(data)
    return len(data) / (time.perf_counter() - start)


def reference(raw: Path, args) -> float:
    """DeepHash-pytorch's way: ImageList + torchvision transforms + DataLoader(shuffle=True)."""
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from hashbench.data import open_dataset
    from hashbench.losses.hyp2 import HyP2Loss, zeta_for
    from hashbench.networks import Backbone
    from hashbench.training.runtime import resolve_device

    with open_dataset(raw) as ds:
        paths, labels = [str(p) for p in ds.image_files()], ds.labels().astype(np.float32)

    class ImageList:
        def __init__(self, transform):
            self.transform = transform

        def __getitem__(self, index):
            img = Image.open(paths[index]).convert("RGB")
            return self.transform(img), labels[index], index

        def __len__(self):
            return len(paths)

    transform = T.Compose([T.Resize((224, 224)), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    device = resolve_device(args.device)
    torch.manual_seed(0)
    backbone = Backbone("alexnet", (256, 256, 3), pretrained=False)
    net = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.feature_dim, 16)).to(device)
    criterion = HyP2Loss(labels.shape[1], 16, zeta_for(16, labels.shape[1]), 0.5, 0).to(device)
    optimizer = torch.optim.SGD([{"params": net.parameters(), "lr": 0.01},
                                 {"params": criterion.parameters(), "lr": 0.02}], momentum=0.9, weight_decay=5e-4)
    loader = torch.utils.data.DataLoader(ImageList(transform), batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers, pin_memory=device.type == "cuda")
    net.train()
    start = time.perf_counter()
    for image, label, _ in loader:
        image, label = image.to(device), label.to(device)
        optimizer.zero_grad()
        loss = criterion(net(image), label)
        loss.backward()
        optimizer.step()
    return len(paths) / (time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------- memory
MEMORY_RUN = """
import resource, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
from hashbench.data import open_dataset
from hashbench.methods import get_method
from hashbench.pipeline import dataset_info, train_set
from hashbench.training import Runtime
with open_dataset(sys.argv[1]) as ds:
    method = get_method("gpq")(32, 0, {"iterations": int(sys.argv[2]), "labeled_batch": 16, "unlabeled_batch": 16},
                               dataset_info(ds))
    data = train_set(type(method), ds, {"train": np.arange(100), "unlabeled": np.arange(100, ds.n_items)})
method.runtime = Runtime(workers=int(sys.argv[4]), progress=False)
method.fit(data)
own = int([line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1])
print(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss(raw: Path, iterations: int, workers: int) -> tuple[int, int]:
    """(process peak kB, largest worker peak kB) of a fresh GPQ run."""
    proc = subprocess.run([sys.executable, "-c", MEMORY_RUN, str(raw), str(iterations), str(ROOT / "src"),
                           str(workers)], capture_output=True, text=True, check=True)
    own, child = proc.stdout.split()[-2:]
    return int(own), int(child)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=20, help="GPQ steps of the memory runs")
    parser.add_argument("--folder", default=os.environ.get("TMPDIR", "/tmp") + "/hashbench-train-speed")
    parser.add_argument("--quick", action="store_true", help="throughput on 1/4 of the images")
    args = parser.parse_args()
    folder = Path(args.folder)
    names = make_images(folder / "jpeg", args.images)
    n = len(names) // 4 if args.quick else len(names)
    write_set(folder / "raw", folder / "jpeg", names[:n])
    print(f"{n} JPEG files of 500x375, HyP² + AlexNet (random init) at 224, batch {args.batch}, "
          f"{args.workers} workers, device {args.device}, 1 epoch", flush=True)
    ref = reference(folder / "raw", args)
    print(f"reference loop (ImageList + torchvision transforms + DataLoader): {ref:.1f} images/s", flush=True)
    mine = ours(folder / "raw", args)
    print(f"hashbench trainer: {mine:.1f} images/s ({mine / ref:.2f}x the reference)", flush=True)
    write_set(folder / "raw_n", folder / "jpeg", names, image_size=64)
    write_set(folder / "raw_10n", folder / "jpeg", names * 10, image_size=64)
    small = peak_rss(folder / "raw_n", args.iterations, args.workers)
    large = peak_rss(folder / "raw_10n", args.iterations, args.workers)
    total_small, total_large = small[0] + small[1], large[0] + large[1]
    print(f"peak RSS, GPQ {args.iterations} steps, {args.workers} workers (process + largest worker): "
          f"{len(names)} paths {total_small / 1024:.0f} MB ({small[0] / 1024:.0f} + {small[1] / 1024:.0f}), "
          f"{10 * len(names)} paths {total_large / 1024:.0f} MB ({large[0] / 1024:.0f} + {large[1] / 1024:.0f})")
    print(f"throughput_ratio={mine / ref:.2f} rss_ratio={total_large / total_small:.2f}")


if __name__ == "__main__":
    main()
