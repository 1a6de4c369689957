import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402  (puts python/ on sys.path)

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def parity():
    """(meta, tensors) of fixtures/erc/swift-parity.{json,safetensors}."""
    return helpers.load_parity()
