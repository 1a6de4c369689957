import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402  (puts python/ on sys.path)

# Tiny tensors: threads only add OpenMP hand-offs (30x slower on a loaded 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def parity():
    """(meta, tensors) of fixtures/erc/swift-parity.{json,safetensors}."""
    return helpers.load_parity()
