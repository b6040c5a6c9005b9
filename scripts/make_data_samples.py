#!/usr/bin/env python
"""Regenerate data_samples/ (one small LeRobot v3.0 dataset per embodiment and pyramid tier).

    python scripts/make_data_samples.py            # all samples into data_samples/
    python scripts/make_data_samples.py --only so100_teleop --out /tmp/samples
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from groot_kit.data.samples import SAMPLES, make_all  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data_samples"))
    ap.add_argument("--only", nargs="*", choices=list(SAMPLES), help="regenerate only these samples")
    a = ap.parse_args(argv)
    total = 0.0
    for r in make_all(a.out, a.only):
        total += r["mb"]
        print(f"{r['name']:20s} {r['episodes']:3d} episodes {r['frames']:6d} frames  tiers={r['tiers']}  "
              f"{r['mb']:.2f} MB  {r['seconds']:.1f} s")
    print(f"total {total:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
