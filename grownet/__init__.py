"""grownet: grow networks with gradual DropIn, thin them with depth and width dropout sweeps,
and estimate the minimum depth and width a dataset needs."""

__version__ = "0.1.0"
