import os

import pytest
import torch

# Tests run on 2-core CI machines next to other processes: one thread avoids OpenMP
# oversubscription, which slows small convolutions several times over.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Fixtures that run a search several tests read. Under xdist with --dist loadgroup (make test)
# the tests that use one are one xdist_group: one worker runs the search once for all of them.
SHARED_RUNS = ("tiny_run_dir", "tiny_run")


def pytest_collection_modifyitems(config, items):
    for item in items:
        shared = [f for f in SHARED_RUNS if f in getattr(item, "fixturenames", ())]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
    if hasattr(config, "workerinput"):  # an xdist worker
        from tests._xdist_groups import write_groups

        write_groups(config, items)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    from tests._xdist_groups import KEY, folder

    node.workerinput[KEY] = str(folder(node.config))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadgroup":
        from tests._xdist_groups import GroupScheduling

        return GroupScheduling(config, log)
    return None


def pytest_unconfigure(config):
    from tests._xdist_groups import remove_folder

    remove_folder(config)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """One finished tiny search (report included), shared by the export and report tests."""
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
