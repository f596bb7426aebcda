"""Built-in provider adapters, one file per provider or variant (see `registry.py`).

Every `*.py` here not starting with `_` is loaded at start; `_*.py` files hold shared helpers.
"""
