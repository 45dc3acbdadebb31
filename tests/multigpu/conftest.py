# tests/multigpu/test_two_gpus.py is a torchrun script (two GPUs, NCCL), not a pytest module: keep
# `pytest tests/` from collecting it.
collect_ignore = ["test_two_gpus.py"]
