"""``raylung synth``: a trained healthy -> pathological G applied to whole CT scans.

    from raylung.synth.scan import Synthesiser
    synth = Synthesiser("demo_out/generator_h2p.pt")            # the demo exports one
    diseased = synth(sitk.ReadImage("healthy.nii.gz"), seed=0)   # int16 HU, the scan's grid
    sitk.WriteImage(diseased, "diseased.nii.gz")   # the healthy lung mask still fits it
"""
