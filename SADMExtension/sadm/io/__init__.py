"""Image I/O: the in-memory sequence (`sequence`), one reader class per input format behind the
`reader.SequenceReader` interface, their registry (`readers`), and the NRRD / NIfTI / .seq.nrrd writers."""
