"""``raylung tune``: Ray Tune searches of the GAN's loss weights (or any config field).

    space.py       the sweep file: base config + ``space:`` -> validated Ray Tune param space
    objectives.py  what a trial is scored by: shape, realism, composite, translation,
                   downstream
    callback.py    a trial's Train -> Tune reports, with the objective added
    trial.py       the Tune function trainable: GAN (+ segmentation) runs under Ray Train
    sweep.py       checks, Tuner set-up and resume
    results.py     the results table, best config and summary; plots.py, the PNGs
"""
