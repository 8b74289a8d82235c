import os

import pytest
import torch

# Tests run on 2-core CI machines next to other processes: one thread avoids OpenMP
# oversubscription, which slows small convolutions several times over.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
