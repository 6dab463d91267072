"""vetpro-workflow: case management for VETPRO mobility projects."""

__version__ = "0.1.0"
