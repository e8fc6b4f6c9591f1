"""Root pytest configuration: skip collecting the torch adapter's modules for
doctests when torch (an optional extra) is not installed."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
    collect_ignore_glob += ["hsslin/torch/*"]
