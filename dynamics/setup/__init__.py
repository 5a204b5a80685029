"""``python -m dynamics.setup``: connect a Dynamics 365 environment to Push365 in one run."""
