"""`python -m simulators NAME [--port P] [--seed S] [--set key=value ...]` serves one simulator.

Prints one JSON line with the source config (base_url and credentials) once listening,
then serves until killed. Used by the benchmarks, to keep the server out of the measured
process, and handy for trying the CLI against a fake account.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

from . import SIMULATORS


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators")
    parser.add_argument("name", choices=sorted(SIMULATORS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="simulator constructor argument, e.g. conversations=2000")
    args = parser.parse_args()
    kwargs = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    sim = SIMULATORS[args.name](seed=args.seed, **kwargs)
    sim.start(port=args.port)
    print(json.dumps(sim.source_config()), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
