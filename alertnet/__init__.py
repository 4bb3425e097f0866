"""alertnet: an SMS alert network for neighbourhoods."""

__version__ = "0.1.0"
