"""`ablab bench` and the pair timer behind it; the token layouts whose strides the GPU runs showed to matter."""

import pytest
import torch
from typer.testing import CliRunner

from ablab.cli import app
from ablab.cost.versus_timm import bench_pair
from ablab.nn.embed import PatchEmbed, TokenPool


def test_bench_pair_times_both_models_on_one_batch():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    r = bench_pair("lin", a, b, "ref", torch.randn(5, 8), rounds=2)
    assert r.batch_size == 5 and r.ours > 0 and r.timm > 0 and r.params_equal
    r = bench_pair("lin", a, torch.nn.Linear(8, 3), "ref", torch.randn(5, 8), rounds=2)
    assert not r.params_equal


def test_fp16_autocast_is_refused_on_the_cpu():
    with pytest.raises(ValueError, match="CUDA only"):
        bench_pair("lin", torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), "ref", torch.randn(1, 2), amp=True)
    result = CliRunner().invoke(app, ["bench", "deit_ti", "--amp"])
    assert result.exit_code != 0 and "fp16 autocast is timed on CUDA only" in result.output


def test_bench_names_the_presets_that_have_a_twin():
    result = CliRunner().invoke(app, ["bench", "hvt_s_4"])
    assert result.exit_code != 0 and "has no timm twin; choose from" in result.output


@pytest.mark.parametrize("clip", [False, True])
def test_stem_tokens_are_contiguous(clip):
    """A transposed view out of the stem would carry its strides into every residual add of a model without a
    class token or stem norm (elementwise ops keep their input's layout): 25% slower on an H200."""
    stem = PatchEmbed(patch=4, in_chans=3, dim=8, norm=False, clip=clip, patch_t=2)
    x = torch.randn(2, 3, 4, 16, 16) if clip else torch.randn(2, 3, 16, 16)
    tokens = stem(x)
    assert tokens.shape == (2, (2 if clip else 1) * 16, 8) and tokens.is_contiguous()
    assert (tokens + torch.zeros(1, tokens.shape[1], 8)).is_contiguous()


def test_token_pool_output_is_contiguous():
    out = TokenPool(op="max", dim=8, kernel=3)(torch.randn(2, 17, 8))
    assert out.shape == (2, 8, 8) and out.is_contiguous()
