"""archbench: compare CNN architectures under identical training budgets."""
__version__ = "0.1.0"
