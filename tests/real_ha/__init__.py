"""The real tier: the same mirror checks as the fast tier, against a real Home Assistant 2025.4.4
that the test run installs (its own Python 3.13 venv) and starts itself. Select with `-m real_ha`."""
