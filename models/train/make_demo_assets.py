"""Writes the small real-data derivatives the demo replays (assets/demo/).

- echo_cine.dcm: pydicom's `examples_ybr_color.dcm`, copied unchanged: a real
  cardiac ultrasound cine, 30 frames, 240x320, JPEG baseline (YBR_FULL_422),
  Frame Time 33.3 ms. It is pydicom-data's `color3d_jpeg_baseline.dcm` reduced.
- chest_cr.dcm: pydicom-data's `RG1_UNCR.dcm` (PA chest radiograph, CR,
  1955x1841, 15-bit, MONOCHROME1) averaged down 4x4 to 488x460, stored
  uncompressed with its window and photometric interpretation unchanged.

Usage: python make_demo_assets.py DATA_DIR OUT_DIR   (DATA_DIR from scripts/fetch-data)
"""

import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(
        data / "pydicom-pkg/pydicom/data/test_files/examples_ybr_color.dcm",
        out / "echo_cine.dcm",
    )

    ds = pydicom.dcmread(data / "pydicom-data/data_store/data/RG1_UNCR.dcm")
    px = ds.pixel_array.astype(np.uint32)
    f = 4
    h, w = (px.shape[0] // f) * f, (px.shape[1] // f) * f
    small = px[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    small = np.round(small).astype(np.uint16)
    ds.Rows, ds.Columns = small.shape
    if "PixelSpacing" in ds:
        ds.PixelSpacing = [float(v) * f for v in ds.PixelSpacing]
    ds.PixelData = small.tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.ImageComments = "bedside demo derivative of RG1_UNCR.dcm (4x4 mean)"
    ds.save_as(out / "chest_cr.dcm", enforce_file_format=True)
    print(f"wrote {out}/echo_cine.dcm and {out}/chest_cr.dcm ({small.shape[1]}x{small.shape[0]})")


if __name__ == "__main__":
    main()
