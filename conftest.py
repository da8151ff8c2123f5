"""Settings every test run needs before anything imports torch.

torch picks its CPU kernels by the machine's instruction set. With AVX-512 kernels (seen on an
AMD EPYC machine) float sums come out in another order than with AVX2, and the trainer tests,
which compare training runs and learning curves to tolerances set with AVX2, fail there though
nothing is wrong. Tests therefore run with AVX2 kernels everywhere (where the CPU lacks AVX2,
torch falls back to its default kernels). Set ATEN_CPU_CAPABILITY yourself to test others.
"""

from __future__ import annotations

import os

os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
