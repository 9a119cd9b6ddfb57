"""Golden values for tests/test_transforms.c and test_image.c from Pillow.

Run once with Debian's python3-pil (not needed by the test suite, which reads
the committed JSON):  /usr/bin/python3 tests/gen_data_fixtures.py
Writes tests/fixtures/data_resize.json:
  - Pillow's Image.resize (BILINEAR and NEAREST, as torchvision's resize on PIL
    images uses) of a small synthetic RGB image to several sizes;
  - Pillow's convert('L') of a few colours;
  - checksums of DRIVE image 21 and its reference target resized as the
    reference training code does (shorter side 282 and 678), when DRIVE exists.
"""
import json
import os

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVE = os.environ.get("TG_DRIVE_DIR", os.path.join(HERE, "..", "..", "shared", "data", "DRIVE"))


def synthetic(w, h):
    a = np.zeros((h, w, 3), dtype=np.uint8)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                a[y, x, c] = (x * 37 + y * 91 + c * 53 + x * y * 7) % 256
    return a


def checksum(a):
    """sum of byte * (i % 65521 + 1) over the flat row-major bytes (exact in a double)."""
    flat = a.astype(np.int64).ravel()
    w = np.arange(flat.size, dtype=np.int64) % 65521 + 1
    return int((flat * w).sum())


def torchvision_size(w, h, size):
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (size, new_long) if w <= h else (new_long, size)


def main():
    src = synthetic(17, 13)
    img = Image.fromarray(src, "RGB")
    cases = []
    for (w, h) in [(7, 5), (9, 13), (17, 29), (40, 31), (5, 3), (17, 13), (1, 1), (3, 50)]:
        for name, mode in [("bilinear", Image.BILINEAR), ("nearest", Image.NEAREST)]:
            out = np.array(img.resize((w, h), mode))
            cases.append({"width": w, "height": h, "mode": name, "out": out.tolist()})
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (1, 2, 3), (128, 128, 128), (255, 255, 255), (37, 201, 99)]
    gray = []
    for col in colours:
        im = Image.new("RGB", (1, 1), col)
        gray.append(list(col) + [im.convert("L").getpixel((0, 0))])
    fixture = {"pillow": PIL.__version__, "src": src.tolist(), "resize": cases, "gray": gray}

    tif = os.path.join(DRIVE, "training", "images", "21_training.tif")
    if os.path.exists(tif):
        rgb = Image.open(tif).convert("RGB")
        manual = np.array(Image.open(os.path.join(DRIVE, "training", "1st_manual", "21_manual1.gif")).convert("L")) / 255
        roi = 255 - np.array(Image.open(os.path.join(DRIVE, "training", "mask", "21_training_mask.gif")).convert("L"))
        target = Image.fromarray(np.clip(manual + roi, a_min=0, a_max=255))  # mode F, as the reference code
        drive = []
        for size in (282, 678):
            w, h = torchvision_size(*rgb.size, size)
            ri = np.array(rgb.resize((w, h), Image.BILINEAR))
            rt = np.array(target.resize((w, h), Image.NEAREST)).astype(np.int64)
            drive.append({"size": size, "width": w, "height": h, "image_checksum": checksum(ri),
                          "target_checksum": checksum(rt)})
        fixture["drive21"] = drive

    path = os.path.join(HERE, "fixtures", "data_resize.json")
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    print("wrote", path)


if __name__ == "__main__":
    main()
