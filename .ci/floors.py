"""Print pip constraints pinning the dependency floors in setup.cfg (``pkg>=X`` -> ``pkg==X``).

``make test-oldest`` installs ml_toolbox with these constraints, so the suite runs on exactly the
versions setup.cfg declares as the minimum of what ml_toolbox needs: install_requires, plus the
extras named on the command line (default: none). The test extra is not pinned: its tools are not
what is judged, and their floors pinned together do not resolve (pip: ResolutionImpossible).
"""

import configparser
import re
import sys
from pathlib import Path


def floors(extras=()):
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += config["options.extras_require"][extra].splitlines()
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(3)
        elif line:
            raise SystemExit(f"setup.cfg: no floor (pkg>=version) in {line!r}")
    return pins


if __name__ == "__main__":
    for name, version in floors(sys.argv[1:]).items():
        print(f"{name}=={version}")
