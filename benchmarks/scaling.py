"""How the cost grows: 10^7, 10^8 (and, on request, 10^9) activation values written and analysed.

Each size is a synthetic run of 13 layers x 768 neurons built through the extraction's Arrow path and
analysed by `benchmarks/analysis.py` in a fresh process; this prints, per size, the write time and rate,
bytes per value on disk, the one-layer scan, the statistics cache, `analyze` of one layer and the peak
memory of the analysing process, so the growth from size to size can be read off.

    python benchmarks/scaling.py [--sizes 1e7,1e8] [--sizes 1e7,1e8,1e9]   (1e9 needs about 5 GB of disk)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

LAYERS, NEURONS = 13, 768


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e7,1e8")
    args = ap.parse_args()
    script = Path(__file__).with_name("analysis.py")
    print(
        f"{'values':>14s} {'write s':>8s} {'M val/s':>8s} {'B/value':>8s} {'scan 1 layer':>12s} "
        f"{'cache all':>10s} {'analyze 1':>10s} {'peak MB':>8s}"
    )
    for size in (int(float(x)) for x in args.sizes.split(",")):
        sentences = max(1, round(size / (LAYERS * NEURONS)))
        out = subprocess.run(
            [sys.executable, str(script), "--sentences", str(sentences), "--json"], capture_output=True, text=True
        )
        if out.returncode:
            raise SystemExit(out.stderr)
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{m['n_values']:14,d} {m['write_seconds']:8.1f} {m['n_values'] / m['write_seconds'] / 1e6:8.1f} "
            f"{m['bytes_per_value']:8.2f} {m['scan_one']:12.3f} {m['moments_all']:10.2f} {m['analyze_one']:10.3f} "
            f"{m['peak_rss_mb']:8.0f}"
        )


if __name__ == "__main__":
    main()
