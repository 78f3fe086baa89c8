"""Prefect flow `train`: a thin wrapper over `tokenmill.train.loop.run_train`.

For several GPUs, launch the plain function under torchrun; the flow runs one process.
"""

from tokenmill.flows.common import tokenized_step_flow

train = tokenized_step_flow("train", "Pretrain a decoder-only Transformer on a pack version's shards and score it.")
