"""A local Entra-shaped identity provider and private feed server for the demo and the tests."""

from .server import Emulator

__all__ = ["Emulator"]
