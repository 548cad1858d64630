"""Errors a user can cause in the governance core (config, taxonomy, observations)."""


class GovtrainError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ConfigError(GovtrainError):
    """A config value is invalid; the message names the field and the value."""


class TaxonomyError(GovtrainError):
    """Parameters and groups do not match one-to-one (unassigned names, empty groups)."""


class ObservationError(GovtrainError):
    """An observation is malformed (wrong group count, non-finite value)."""
