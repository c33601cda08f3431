"""The phases package's error type (a ValueError, as every error a user can cause)."""


class PhaseError(ValueError):
    """A phase name, scale name or phase file a user gave cannot be used."""
