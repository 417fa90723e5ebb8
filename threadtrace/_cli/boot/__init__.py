"""The directory ``threadtrace run`` puts first on ``PYTHONPATH``: see ``sitecustomize.py``."""
