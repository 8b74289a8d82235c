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


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """One finished tiny search (report included), shared by the export and report tests
    (once per xdist worker: each has its own temporary folder, so no test sees another's writes)."""
    import mogaqnn

    out = tmp_path_factory.mktemp("tiny") / "run"
    config = mogaqnn.SearchConfig(
        model="lenet5", dataset="mnist5k", out=str(out), seed=0, population=4, generations=2,
        pretrain_epochs=1, search_epochs=0.5, final_epochs=0.5, search_train_samples=300,
        search_val_samples=200, weight_bits=(1, 2, 4, 8), act_bits=(4, 8),
        expansion_ratios=(1.0, 1.5), progress=False,
    )  # fmt: skip
    mogaqnn.search(config)
    return out
