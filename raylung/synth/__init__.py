"""``raylung synth``: a trained healthy -> pathological G applied to whole CT scans.

    synth = Synthesiser("runs/demo_gan/checkpoint_000002/generator_h2p.pt")
    diseased = synth(sitk.ReadImage("healthy.nii.gz"), seed=0)   # int16 HU, the scan's grid
    sitk.WriteImage(diseased, "diseased.nii.gz")   # the healthy lung mask still fits it
"""
