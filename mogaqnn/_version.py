"""The package version, in a module of its own so that submodules import it without the
package root (which imports them)."""

__version__ = "0.1.0"
