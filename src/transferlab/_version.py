"""The package version, in one place every module may import (none imports the package root)."""

__version__ = "0.1.0"
