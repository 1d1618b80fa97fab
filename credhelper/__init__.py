"""credhelper: short-lived Entra ID tokens for git, pip and npm, from one local daemon."""

__version__ = "0.1.0"
