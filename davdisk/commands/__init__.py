"""Command groups of the ``davdisk`` CLI that live outside ``cli.py``, one module each.

Each module has ``register(subparsers)`` (adds its argparse parser) and ``run(args, cfg) -> int``
(does the work; raises DavdiskError for anything the user should read as one line).
"""
