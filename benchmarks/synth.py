"""How long ``raylung synth`` takes per clinical-size scan, against ``raylung segment`` on the
same scan in the same run.

    .venv/bin/python benchmarks/synth.py                 # 1 scan of 512x512x300, ~9 min on 2 CPUs
    .venv/bin/python benchmarks/synth.py --slices 150    # a quicker look

Exports the default generator (``gan.*`` defaults: width 32, 6 residual blocks, with one noise
channel as the claim's G has; 2-D on 256 x 256 slices, 3-D on 64^3 windows) and the default
segmenter of benchmarks/segment.py, both untrained: a forward pass costs the same whatever the
weights. Stages of synth: read, prepare (canonical grid, thorax box), change (G over the
lungs' slices or windows), to_native (the change onto the scan's grid, added), write; of
segment: read, prepare, predict, to_native (with post-processing), write. The row
"synth / segment" is synth's total over segment's. Writes benchmarks/results/synth.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from measure import Laps, clinical_run
from segment import MODES, export_segmenter, timed_stages

from raylung.config import load_config
from raylung.io.read import read_volume
from raylung.io.write import write_image
from raylung.networks import build_generator, export_generator
from raylung.segment.scan import prepare_scan
from raylung.synth.scan import Synthesiser, add_change

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    args, scans = clinical_run(__doc__.split("\n\n")[0], scans=1)
    rows = []
    for mode, overrides in MODES.items():
        generator = _export_generator(args.workdir / f"generator_{mode}.pt", overrides)
        segmenter = export_segmenter(args.workdir / f"segmenter_{mode}.pt", overrides)
        for scan in scans:
            synth = _timed_synth(generator, scan, args.workdir)
            segment = timed_stages(segmenter, scan, args.workdir)
            rows += [{"mode": mode, "scan": scan.name, "job": "synth", **synth},
                     {"mode": mode, "scan": scan.name, "job": "segment", **segment},
                     {"mode": mode, "scan": scan.name, "job": "synth / segment",
                      "total_s": round(synth["total_s"] / segment["total_s"], 2)}]
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "synth.csv", index=False)
    print("seconds per 512 x 512 scan, in this process (no Ray); the ratio row: synth / segment")
    print(table.to_string(index=False, na_rep=""))


def _export_generator(path: Path, overrides: list[str]) -> Path:
    config = load_config(None, [*overrides, "gan.noise_channels=1"])
    torch.manual_seed(0)
    return export_generator(build_generator(config), config, path)


def _timed_synth(model: Path, scan: Path, work: Path) -> dict[str, float]:
    synthesiser, lap = Synthesiser(model), Laps()
    image = read_volume(scan)
    lap("read")
    prepared = prepare_scan(image, synthesiser.config)
    lap("prepare")
    change = synthesiser.change(prepared)
    lap("change")
    diseased = add_change(image, change, prepared)
    lap("to_native")
    write_image(diseased, work / "synth_loop" / scan.name)
    lap("write")
    return lap.table()


if __name__ == "__main__":
    main()
