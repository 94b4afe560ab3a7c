#!/usr/bin/env python
"""Train the assignment's MLP on CIFAR-10 with arrayml, on any backend.

    python examples/train.py --data-dir ../shared/data/cifar10             # NumPy, the defaults
    python examples/train.py --xp torch --device cuda                      # PyTorch tensors on a GPU
    python examples/train.py --xp cupy                                     # CuPy on a GPU
    python examples/train.py --hidden-dims 512 256 128 --batch-norm --epochs 20

Prints the per-epoch figures and the test accuracy of the best-validation model, and writes
results.json, loss_curve.png and confusion_matrix.png to --out (default results/<run-name>).
Run with --help for every flag. Install first: pip install -e . -e examples/arrayml_app
"""

import sys

from arrayml_app.cli import main

if __name__ == "__main__":
    sys.exit(main())
