"""openear: hear what people say in public, without watching them."""

__version__ = "0.1.0"
