"""How long `tui-lora doctor` takes on 5,000 small images, and how long its report is.

Builds, in a temporary folder, one concept folder of N flat-colour 16×16 PNGs, each a different
colour, with captions (the shape of the dataset that once took 70 s and reported every image as a
near copy of the others), then runs the doctor as the CLI does, without its cache, and prints the
time, the peak memory, the report's line count and the near-copy findings.

    python benchmarks/doctor_speed.py [--images 5000] [--repeat 1]

Target (issue 27): at most 20 s on 2 cores for 5,000 images, at most ~60 report lines, and no
near copies among distinct flat colours.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_dataset(root: Path, count: int) -> Path:
    from PIL import Image

    folder = root / "images" / "2_flat colours"
    folder.mkdir(parents=True)
    for index in range(count):
        # spread the colours over the cube: every image a different colour
        colour = ((index * 37) % 256, (index * 91 // 7) % 256, (index * 13 // 3 + index // 256 * 50) % 256)
        Image.new("RGB", (16, 16), colour).save(folder / f"{index:05d}.png")
        (folder / f"{index:05d}.txt").write_text(f"flat colour {index}")
    return root / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    from engine.config import RunConfig
    from engine.dataset.doctor import DoctorOptions, format_report, run_doctor

    with tempfile.TemporaryDirectory() as temp:
        images = build_dataset(Path(temp), args.images)
        times = []
        for _ in range(args.repeat):
            options = DoctorOptions.from_config(RunConfig.from_values({"folders.images": str(images)}),
                                                images_dir=str(images), find_tokenizer=False, use_cache=False)
            started = time.perf_counter()
            report = run_doctor(options)
            text = format_report(report, 100)
            times.append(time.perf_counter() - started)
    near = [f for f in report.findings if f.code == "duplicates.near"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.images} images: {min(times):.1f} s (best of {len(times)}), peak memory {peak_mb:.0f} MB, "
          f"report {len(text.splitlines())} lines, {len(near)} near-copy finding(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
