"""How the flows run unattended: deployment definitions, the serve process (see `serve.py`)."""
