"""Shared by the tests (and importable by spawned worker processes)."""
import json
import os
import socket
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "fixtures")
if os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))  # python/: import moe_inspect_torch without installing


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def load_file(path: str) -> dict:
    """A safetensors file as {name: tensor}, read with torch alone (so that the tests need no
    `safetensors` package): u64 header length, JSON header, little-endian row-major data."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        data = bytearray(raw[base + begin:base + end])
        t = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def load_parity():
    """fixtures/erc/swift-parity.json (written by the Swift engine) and its tensors."""
    with open(os.path.join(FIXTURES, "erc", "swift-parity.json")) as f:
        meta = json.load(f)
    return meta, load_file(os.path.join(REPO, meta["tensors"]))


def load_layer(meta_model: dict, layer: dict):
    """R [n, d], W_g, W_p [n, D, d], W_o [n, d, D] and delta [n, d] of one fixture layer."""
    weights = load_file(os.path.join(REPO, meta_model["checkpoint"], "model.safetensors"))
    noise = load_file(os.path.join(REPO, meta_model["noise"]))
    names = layer["expert_tensors"]
    r = weights[layer["router"]].float()
    gate = torch.stack([weights[k].float() for k in names["gate"]])
    up = torch.stack([weights[k].float() for k in names["up"]])
    down = torch.stack([weights[k].float() for k in names["down"]])
    return r, gate, up, down, noise[layer["delta"]].float()
