import os, torch
from sketchwalk import ops
for T, hq, hkv in ((8192, 32, 8), (2048, 32, 8), (8192, 12, 2)):
    q = torch.randn(1, hq, T, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, hkv, T, 128, device="cuda", dtype=torch.bfloat16)
    for rows in (1, 2, 4):
        for n in ("", "1", "2", "4", "8", "16"):
            os.environ["SKETCHWALK_SAMPLED_ROWS_BLOCKS"] = n
            try:
                ops.score_blocks_sampled_rows(q, k, rows); torch.cuda.synchronize(); r = "ok"
            except Exception as e:
                r = str(e)[:80]
            print(T, hq, hkv, rows, repr(n), r, flush=True)
