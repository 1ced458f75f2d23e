"""Copy ReDoc's standalone bundle from drf-spectacular-sidecar to static/vendor/redoc/, without
the one request it makes to another host: the "API docs by Redocly" footer shows a logo from
https://cdn.redoc.ly, which the Content-Security-Policy (img-src 'self') refuses. The logo
element is replaced by nothing; the footer link stays. Run again after upgrading the sidecar:
`python scripts/vendor_redoc.py`.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import drf_spectacular_sidecar

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(drf_spectacular_sidecar.__file__).parent / "static/drf_spectacular_sidecar/redoc"
TARGET = ROOT / "static" / "vendor" / "redoc"
LOGO = re.compile(r'\w+\.createElement\("img",\{alt:"redocly logo",[^{}]*\}\)')


def main() -> int:
    bundle = (SOURCE / "bundles" / "redoc.standalone.js").read_text()
    patched, count = LOGO.subn("null", bundle)
    if count != 1 or "cdn.redoc.ly" in patched:
        print(f"the logo element was found {count} times; check the new bundle", file=sys.stderr)
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    (TARGET / "redoc.standalone.js").write_text(patched)
    shutil.copy(SOURCE / "LICENSE", TARGET / "LICENSE")
    shutil.copy(
        SOURCE / "bundles" / "redoc.standalone.js.LICENSE.txt",
        TARGET / "redoc.standalone.js.LICENSE.txt",
    )
    print(f"wrote {TARGET / 'redoc.standalone.js'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
