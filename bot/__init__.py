"""Blendwise: blended learning journeys in the flow of work."""

__version__ = "0.1.0"
