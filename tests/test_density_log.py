"""DecodeDensityLog (density.py): the mean of many decode steps' densities, computed when read,
equals the mean of each step's decode_density_per_row / decode_density computed at once."""

import pytest
import torch

from conftest import device_params


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("fold_every", [1, 3, 256])
def test_decode_density_log_equals_mean_of_steps(sw, device, fold_every):
    from sketchwalk.density import DecodeDensityLog, decode_density, decode_density_per_row

    log = DecodeDensityLog(64, fold_every=fold_every)
    want = []
    for step in range(7):
        lens = [130 + step, 1 + step, 64 + step]  # rows of different lengths (host ints)
        cap = [-(-n // 64) for n in lens]
        count = torch.stack([torch.randint(1, c + 1, (2, 1)) for c in cap]).to(torch.int32)
        count = count.to(device)
        log.add(count, tuple(lens))
        want.append(float(decode_density_per_row(count, torch.tensor(lens, device=device), 64)))
        if step == 2:  # the same batch size with one length for every row
            count = torch.randint(1, 4, (3, 2, 1), dtype=torch.int32, device=device)
            log.add(count, 150)
            want.append(float(decode_density(count, 150, 64)))
        if step == 4:  # lengths on the device, another batch size, and a dense step
            seq_lens = torch.tensor([70, 200], dtype=torch.int32, device=device)
            count = torch.tensor([[[2]], [[3]]], dtype=torch.int32, device=device)
            log.add(count, seq_lens.clone())
            want.append(float(decode_density_per_row(count, seq_lens, 64)))
            log.add_value(1.0)
            want.append(1.0)
    assert log.steps == len(want)
    assert float(log.mean()) == pytest.approx(sum(want) / len(want), rel=1e-12)
    assert DecodeDensityLog(64).mean() is None
