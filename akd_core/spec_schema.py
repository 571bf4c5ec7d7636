"""Write the published JSON Schema of the job spec: `python -m akd_core.spec_schema [PATH]`."""

import json
import sys
from pathlib import Path

from akd_core.spec import json_schema

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/job-spec.schema.json")
    out.write_text(json.dumps(json_schema(), indent=2) + "\n")
    print(f"wrote {out}")
