"""The conversion worker process (`python -m converters.worker`), driven by converters.isolated.

Reads one JSON request a line on stdin ({"saved_model", "recipe", "calib", "out"}), converts, writes the .tflite
to "out", and answers one JSON line: {"size": N} or {"error": "..."}. The C++ converter prints to stdout as well,
so the protocol travels on a private copy of the original stdout and fd 1 is pointed at stderr.
"""

import json
import os
import sys


def main() -> int:
    from tflkit.core.process import die_with_parent

    die_with_parent()  # a conversion nobody will read (its driver was killed) only takes the CPU from the rerun
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import numpy as np

    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()  # TensorFlow's C++ start-up lines, once per worker, would interleave with the demo's log

    from converters.convert import ConversionError, convert_saved_model

    for line in sys.stdin:
        request = json.loads(line)
        try:
            images = np.load(request["calib"]) if request.get("calib") else None
            data = convert_saved_model(request["saved_model"], request["recipe"], images)
        except ConversionError as exc:
            protocol.write(json.dumps({"error": str(exc)}) + "\n")
            continue
        with open(request["out"], "wb") as f:
            f.write(data)
        protocol.write(json.dumps({"size": len(data)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
