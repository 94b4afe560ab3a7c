#!/usr/bin/env python
"""The assignment's PyTorch MLP (torch.nn + autograd + torch.optim.SGD), as a reference for arrayml.

Same flags, same data, split, batches (same order), same initial weights (copied from the arrayml
MLP built with the same seed), same evaluation and the same results.json format as
examples/train.py, so that the two can be compared point by point:

    python examples/torch_reference.py --data-dir ../shared/data/cifar10
    python examples/torch_reference.py --data-dir ../shared/data/cifar10 --batch-norm --device cuda

Only the model and its gradients differ: here they come from torch.nn.Linear, nn.BatchNorm1d,
nn.CrossEntropyLoss and loss.backward().
"""

import sys

from arrayml_app.cli import main
from arrayml_app.torch_mirror import torch_learner

if __name__ == "__main__":
    sys.exit(main(prog="torch_reference.py", description=__doc__.split("\n\n")[0], make_learner=torch_learner,
                  fixed={"xp": "torch", "compile": False, "reference": True}))
