"""The admin APIs, one module per concern."""
