"""The application around the arrayml library: the CIFAR-10 experiment runner that
``examples/train.py``, ``examples/torch_reference.py`` and ``examples/experiments/`` share.

    config.py        RunConfig and the one definition of every command-line flag
    cli.py           the command line (parse, run, one-line errors, exit statuses)
    run.py           one run, from the checks to the files it leaves
    data.py          the data set, loaded and split once per process
    models.py        the model, optimizer and learner a RunConfig describes (one builder per --model)
    parallel.py      where a process computes, and data-parallel training under torchrun
    checkpoints.py   the run's checkpoint: what it holds, when it is written, resuming
    outputs.py       results.json, figures, the trained model and the ONNX export, never lost
    interrupts.py    Ctrl-C and SIGTERM end a run the same way
    figures.py       figures with matplotlib's object API
    torch_mirror.py  the plain torch.nn mirror of an arrayml MLP (reference, benchmarks, tests)
    experiments.py   the registry of the report's experiments, and what their scripts share
    report.py        what every section of the report is written with: Report and the number formats

A distribution of its own (``pyproject.toml`` here, ``arrayml-app``), installed beside the library:
``pip install -e . -e examples/arrayml_app`` from the repository root (it brings matplotlib). The
library in ``arrayml/`` never imports it; its tests are in ``examples/tests/``.
"""
