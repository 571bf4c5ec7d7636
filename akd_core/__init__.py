"""akd_core: the Annealing Knowledge Distillation library (no service code here)."""

__version__ = "0.1.0"
