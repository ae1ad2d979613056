"""hashbench: a DVC pipeline that reproduces deep hashing and deep quantization papers."""

__version__ = "0.1.0"
