"""The application around the arrayml library: the CIFAR-10 experiment runner that
``examples/train.py``, ``examples/torch_reference.py`` and ``examples/experiments/`` share.

    config.py        RunConfig and the one definition of every command-line flag
    cli.py           the command line (parse, run, one-line errors)
    run.py           one run: data, model, training, test, results folder, checkpoints, resume
    figures.py       figures with matplotlib's object API
    torch_mirror.py  the plain torch.nn mirror of an arrayml MLP (reference, benchmarks, tests)

Installed with arrayml (``pip install -e ".[app]"`` also installs matplotlib); the library in
``arrayml/`` never imports it.
"""
