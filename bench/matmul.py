"""The machine's measured fp32 and bf16 matmul GFLOP/s, and a matrix-vector product for contrast."""

from __future__ import annotations

import torch
from common import matmul_peaks, report, timeit


def main() -> None:
    peaks = matmul_peaks()
    w, v = torch.randn(1024, 2048), torch.randn(1, 1024)
    matvec = 2 * 1024 * 2048 / timeit(lambda: v @ w, repeat=50, warmup=5) / 1e9
    report(
        "matmul",
        {
            **peaks,
            "matvec_fp32_gflops": round(matvec, 1),
            "bf16_over_fp32": round(peaks["matmul_bf16_gflops"] / peaks["matmul_fp32_gflops"], 2),
        },
    )


if __name__ == "__main__":
    main()
