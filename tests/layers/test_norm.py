import pytest
import torch
import torch.nn.functional as F

from grownet.layers import LocalResponseNorm, local_response_norm


def _naive_within(x, size, alpha, beta, k):
    """Caffe WITHIN_CHANNEL LRN written out as loops over a zero-padded copy."""
    padded = F.pad(x, ((size - 1) // 2,) * 4)
    out = torch.empty_like(x)
    n, c, height, width = x.shape
    for i in range(n):
        for j in range(c):
            for h in range(height):
                for w in range(width):
                    window = padded[i, j, h : h + size, w : w + size]
                    scale = k + alpha / size**2 * (window**2).sum()
                    out[i, j, h, w] = x[i, j, h, w] / scale**beta
    return out


@pytest.mark.parametrize(("size", "k"), [(1, 1.0), (3, 1.0), (5, 2.0)])
def test_across_matches_torch(size, k):
    x = torch.randn(2, 6, 4, 4)
    out = local_response_norm(x, size=size, alpha=1e-2, beta=0.75, k=k)
    assert torch.equal(out, F.local_response_norm(x, size, alpha=1e-2, beta=0.75, k=k))


@pytest.mark.parametrize(("size", "alpha", "k"), [(1, 0.5, 1.0), (3, 0.5, 1.0), (5, 2.0, 2.0)])
def test_within_matches_naive_loops(size, alpha, k):
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    out = local_response_norm(x, size=size, alpha=alpha, beta=0.75, k=k, region="within")
    torch.testing.assert_close(out, _naive_within(x, size, alpha, 0.75, k))


@pytest.mark.parametrize("region", ["across", "within"])
def test_module_matches_function(region):
    x = torch.randn(2, 4, 5, 5)
    layer = LocalResponseNorm(size=3, alpha=5e-5, beta=0.75, region=region)
    expected = local_response_norm(x, size=3, alpha=5e-5, beta=0.75, region=region)
    assert torch.equal(layer(x), expected)
    assert layer.extra_repr() == f"size=3, alpha=5e-05, beta=0.75, k=1.0, region={region!r}"


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((1, 2, 3, 3), {"size": 4}, "size must be odd and positive, got 4"),
        ((1, 2, 3, 3), {"size": 0}, "size must be odd and positive, got 0"),
        ((1, 2, 3, 3), {"alpha": -1.0}, "alpha must be >= 0, got -1.0"),
        ((1, 2, 3, 3), {"beta": -0.5}, "beta must be >= 0, got -0.5"),
        ((1, 2, 3, 3), {"k": 0.0}, "k must be > 0, got 0.0"),
        ((1, 2, 3, 3), {"region": "spatial"}, "region must be one of .*'spatial'"),
        ((1, 2, 3), {"region": "within"}, r"\(N, C, H, W\) input, got \(1, 2, 3\)"),
        ((1, 2), {}, r"\(N, C, ...\) input, got \(1, 2\)"),
    ],
)
def test_rejects(shape, kwargs, match):
    options = {"size": 3, "alpha": 1e-4, "beta": 0.75} | kwargs
    with pytest.raises(ValueError, match=match):
        local_response_norm(torch.ones(shape), **options)
