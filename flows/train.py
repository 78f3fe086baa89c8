"""Prefect flow `train`: a thin wrapper over `tokenmill.train.loop.run_train`.

For several GPUs, launch the plain function under torchrun; the flow runs one process.
"""

from tokenmill.flows.common import tokenized_step_flow

train = tokenized_step_flow("train", "Pretrain a Transformer (causal or masked) on a pack's shards and score it.")
