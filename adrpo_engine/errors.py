"""The engine's user-facing error: a setting, name or file that cannot work, in one readable message.

It lives in its own module (not in ``config``) so that registries the schema itself consults
(``kinds``) can raise it without importing the schema.
"""


class ConfigError(ValueError):
    """A job config that does not validate; ``str()`` is a readable, one-line-per-field message."""
