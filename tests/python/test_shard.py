"""robocache.Loader sharded between ranks (rank / world_size), on the CPU: every rank's share checked against
the single-process epoch of the same seed (complete, disjoint apart from the documented padding, balanced,
strided), reproducibility, bad arguments, torch.distributed defaults, per-rank resume and the default CUDA
device. The two-GPU run is tests/multigpu/test_two_gpus.py."""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

import robocache
from robocache import loader as loader_mod
from robocache import store

torch = pytest.importorskip("torch")

KW = dict(batch_size=4, window=0.5, target_hz=10, streams="a", device="cpu")


@pytest.fixture
def st(tmp_path, rng):
    # episodes of odd lengths: 95 windows of 5 steps, which no world size from 2 to 7 divides (95 = 5 * 19)
    eps = [{"a": (rng.normal(size=(S, 2)).astype(np.float32), np.arange(S) / 10.0)} for S in (23, 40, 17, 31)]
    s = store.write_store(tmp_path / "st", eps)
    assert robocache.Loader(s, **KW).num_windows == 95
    return s


@pytest.fixture
def tiny(tmp_path, rng):
    # 3 windows: fewer than most world sizes
    return store.write_store(tmp_path / "tiny", [{"a": (rng.normal(size=(7, 2)), np.arange(7) / 10.0)}])


def flat(L, epoch):
    """This loader's windows of the epoch, in order, as hashable (episode, start) pairs."""
    return [(int(e), round(float(s), 6)) for b in L.windows(epoch) for e, s in b]


def ranks(st, world_size, **kw):
    return [robocache.Loader(st, rank=r, world_size=world_size, **dict(KW, **kw)) for r in range(world_size)]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("shuffle", [True, False])
def test_union_is_the_single_process_epoch(st, world_size, shuffle):
    single = robocache.Loader(st, shuffle=shuffle, seed=5, **KW)
    Ls = ranks(st, world_size, shuffle=shuffle, seed=5)
    n = single.num_windows
    per = -(-n // world_size)
    pad = per * world_size - n
    for epoch in (0, 1, 2):
        want = flat(single, epoch)
        shares = [flat(L, epoch) for L in Ls]
        # balanced: every rank the same number of windows and of batches
        assert all(len(s) == per for s in shares) and all(L.windows_per_rank == per for L in Ls)
        assert len({len(L) for L in Ls}) == 1 and len(Ls[0]) == -(-per // KW["batch_size"])
        # strided split of the global order, padded with its first windows
        padded = want + want[:pad]
        for r, s in enumerate(shares):
            assert s == padded[r::world_size]
        # complete: as multisets, the single-process epoch plus the `pad` padded windows
        union = Counter(w for s in shares for w in s)
        assert union == Counter(want) + Counter(want[:pad])
        # exactly once apart from the padding, which is each seen twice
        assert {w for w, c in union.items() if c > 1} == set(want[:pad]) and max(union.values()) <= 2
        # disjoint apart from the padding
        for a in range(world_size):
            for b in range(a + 1, world_size):
                assert set(shares[a]) & set(shares[b]) <= set(want[:pad])
        assert pad < world_size


@pytest.mark.parametrize("world_size", [2, 3, 4, 6])
def test_drop_last_shares_are_disjoint_and_equal(st, world_size):
    single = robocache.Loader(st, seed=2, drop_last=True, **KW)
    Ls = ranks(st, world_size, seed=2, drop_last=True)
    n, B = single.num_windows, KW["batch_size"]
    per = n // world_size
    for epoch in (0, 1):
        want = flat(robocache.Loader(st, seed=2, **KW), epoch)  # the global order, nothing dropped
        shares = [flat(L, epoch) for L in Ls]
        assert all(len(s) == per // B * B for s in shares) and len({len(L) for L in Ls}) == 1
        for r, s in enumerate(shares):
            assert s == want[:per * world_size][r::world_size][:per // B * B]
        union = [w for s in shares for w in s]
        assert len(union) == len(set(union))  # no window twice
        assert set(union) <= set(want)
        assert all(len(b) == B for L in Ls for b in L.windows(epoch))


def test_fewer_windows_than_ranks(tiny):
    Ls = ranks(tiny, 7, seed=1)
    assert Ls[0].num_windows == 3
    want = flat(robocache.Loader(tiny, seed=1, **KW), 0)
    shares = [flat(L, 0) for L in Ls]
    assert all(len(s) == 1 for s in shares)  # every rank one batch of one window
    assert len(want) == 3
    assert [s[0] for s in shares] == [want[i % 3] for i in range(7)]
    with pytest.raises(ValueError, match="drop_last=True with world_size=7 leaves no window for any rank: .* only 3"):
        robocache.Loader(tiny, rank=0, world_size=7, drop_last=True, **KW)


def test_iteration_yields_the_rank_share(st):
    # the batches themselves (not only windows()) follow the shard, and world_size=1 is the plain loader
    Ls = ranks(st, 3, seed=4, num_threads=2)
    for L in Ls:
        got = [(int(e), round(float(s), 6)) for b in L for e, s in zip(b["episode"], b["start_time"])]
        assert got == flat(L, 0)
    plain = robocache.Loader(st, seed=4, **KW)
    one = robocache.Loader(st, seed=4, rank=0, world_size=1, **KW)
    assert len(plain) == len(one) and flat(plain, 3) == flat(one, 3)
    a, b = next(iter(plain)), next(iter(one))
    assert torch.equal(a["a"], b["a"]) and torch.equal(a["start_time"], b["start_time"])


def test_reproducible_and_epochs_differ(st):
    a, b = ranks(st, 3, seed=9), ranks(st, 3, seed=9)
    c = ranks(st, 3, seed=10)
    for r in range(3):
        assert flat(a[r], 0) == flat(b[r], 0) and flat(a[r], 4) == flat(b[r], 4)
        assert flat(a[r], 0) != flat(a[r], 1)
        assert flat(a[r], 0) != flat(c[r], 0)
    # iterating advances the epoch: the second pass is epoch 1's share
    L = ranks(st, 3, seed=9)[1]
    first = [b["start_time"].tolist() for b in L]
    second = [b["start_time"].tolist() for b in L]
    assert first != second and len(first) == len(second)
    assert [(int(e), round(s, 6)) for b in L.windows(1) for e, s in b] == [
        (int(e), round(s, 6)) for b in ranks(st, 3, seed=9)[1].windows(1) for e, s in b]


def test_bad_rank_and_world_size(st):
    def bad(match, **kw):
        with pytest.raises(ValueError, match=match):
            robocache.Loader(st, **KW, **kw)

    bad(r"rank must be in \[0, world_size\), got rank=2, world_size=2", rank=2, world_size=2)
    bad(r"rank must be in \[0, world_size\), got rank=-1, world_size=4", rank=-1, world_size=4)
    bad("world_size must be >= 1, got world_size=0", rank=0, world_size=0)
    bad("world_size must be >= 1, got world_size=-2", rank=0, world_size=-2)
    bad("give both rank and world_size or neither, got rank=1, world_size=None", rank=1)
    bad("give both rank and world_size or neither, got rank=None, world_size=2", world_size=2)
    bad("rank must be an integer, got 0.5", rank=0.5, world_size=2)
    bad("world_size must be an integer, got True", rank=0, world_size=True)
    assert robocache.Loader(st, rank=np.int64(1), world_size=np.int64(2), **KW).rank == 1


def test_rank_and_world_size_from_torch_distributed(st, monkeypatch):
    import torch.distributed as dist

    assert (robocache.Loader(st, **KW).rank, robocache.Loader(st, **KW).world_size) == (0, 1)
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 2)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    L = robocache.Loader(st, seed=3, **KW)
    assert (L.rank, L.world_size) == (2, 3)
    assert flat(L, 0) == flat(robocache.Loader(st, seed=3, rank=2, world_size=3, **KW), 0)
    assert "rank 2 of 3" in repr(L)
    # explicit arguments win over torch.distributed
    assert robocache.Loader(st, rank=0, world_size=1, **KW).world_size == 1


def test_state_dict_round_trip_per_rank(st):
    kw = dict(seed=6, num_threads=2)
    for r in range(3):
        full = [b["start_time"].tolist() for b in ranks(st, 3, **kw)[r]]
        L = ranks(st, 3, **kw)[r]
        it = iter(L)
        head = [next(it)["start_time"].tolist() for _ in range(2)]
        it.close()
        state = L.state_dict()
        assert state["rank"] == r and state["world_size"] == 3 and state["batch"] == 2 and state["epoch"] == 0
        M = ranks(st, 3, **kw)[r]
        M.load_state_dict(state)
        rest = [b["start_time"].tolist() for b in M]
        assert head + rest == full
        assert M.state_dict() == dict(state, epoch=1, batch=0)
    state = ranks(st, 3, **kw)[1].state_dict()
    with pytest.raises(ValueError, match="state_dict is for rank 1 of world_size 3 but this Loader is rank 0 of "
                                         "world_size 3"):
        ranks(st, 3, **kw)[0].load_state_dict(state)
    with pytest.raises(ValueError, match="state_dict is for rank 1 of world_size 3 but this Loader is rank 1 of "
                                         "world_size 2"):
        ranks(st, 2, **kw)[1].load_state_dict(state)
    # a state saved before sharding existed is a single process's
    old = {k: v for k, v in robocache.Loader(st, **kw, **KW).state_dict().items() if k not in ("rank", "world_size")}
    robocache.Loader(st, **kw, **KW).load_state_dict(old)
    with pytest.raises(ValueError, match="state_dict is for rank 0 of world_size 1"):
        ranks(st, 2, **kw)[0].load_state_dict(old)


def test_cuda_without_index_is_the_current_device(st, monkeypatch):
    # no GPU here: pretend two, with GPU 1 current (torchrun's torch.cuda.set_device(local_rank)); only
    # construction is checked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    # the C++ pipeline would look for the GPU: a stand-in records what it was asked for
    made = []
    monkeypatch.setattr(loader_mod, "_C", SimpleNamespace(build_info=lambda: {"cuda": True},
                                                          LoaderPipeline=lambda *a: made.append(a[5])))
    kw = dict(KW)
    del kw["device"]
    assert robocache.Loader(st, device="cuda", **kw).device == "cuda:1"
    assert robocache.Loader(st, device="cuda:0", **kw).device == "cuda:0"
    assert robocache.Loader(st, **kw).device == "cuda:1"  # the default device is CUDA
    assert made == ["cuda:1", "cuda:0", "cuda:1"]
    with pytest.raises(ValueError, match="device='cuda:2': PyTorch sees 2 CUDA GPU"):
        robocache.Loader(st, device="cuda:2", **kw)
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N', got 'cuda:x'"):
        robocache.Loader(st, device="cuda:x", **kw)
