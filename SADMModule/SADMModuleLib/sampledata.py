"""The synthetic sample sequences shipped with the module, registered in Slicer's Sample Data module."""

from __future__ import annotations

import logging

from SADMModuleLib import MODULE_DIR

SAMPLE_DATA = (
    # (sample name, file in Resources/SampleData, SHA256 of that file)
    # Written by Testing/module/make_sample_data.py from the engine's synthetic generators.
    (
        "SADMCardiacSynthetic",
        "SADMCardiacSynthetic.seq.nrrd",
        "cfc0b726a4eb350a4737eb9d41d053870de746a741754a43381061144c824f95",
    ),
    (
        "SADMBrainSynthetic",
        "SADMBrainSynthetic.seq.nrrd",
        "c7a6479acc84bef293ad1cdada7d58efbd39ba69b7d84fdfec189b673f2e6f32",
    ),
)


def registerSampleData() -> None:
    """Add the synthetic cardiac and brain sequences shipped with the module to Sample Data, in its
    "SADM" category (a source's category; Sample Data has no call to declare one)."""
    import SampleData

    resources = MODULE_DIR / "Resources"
    for sampleName, fileName, checksum in SAMPLE_DATA:
        path = resources / "SampleData" / fileName
        if not path.is_file():
            logging.warning(f"SADM sample data {path} is missing; {sampleName} is not offered in Sample Data")
            continue
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="SADM",
            sampleName=sampleName,
            thumbnailFileName=str(resources / "Icons" / f"{sampleName}.png"),
            uris=path.as_uri(),
            fileNames=fileName,
            checksums=f"SHA256:{checksum}",
            nodeNames=sampleName,
            # `loadFileType`: the one spelling Slicer 5.6 (its only one) and 5.8+ (deprecated alias) accept.
            loadFileType="SequenceFile",
        )
