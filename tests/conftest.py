"""Test-session settings."""

import torch

# One intra-op thread: the tests run many tiny tensors, for which a thread pool costs more than
# it gains (and on a shared 2-core machine it makes run times erratic).
torch.set_num_threads(1)
