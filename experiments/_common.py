"""What the research scripts share: the command line recorded in a results file, and the driver of a family of lever runs."""
import argparse, os, time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def recorded_command(script: str, argv, paths=("--out",)) -> str:
    "The command line as recorded in the results: the script and the values of path options relative to the repository."
    args, out = list(argv), []
    while args:
        x = args.pop(0); opt, eq, val = x.partition("=")
        if opt in paths and (eq or args):
            out += [opt, os.path.relpath(Path(val if eq else args.pop(0)).resolve(), REPO)]
        else: out.append(x)
    return " ".join(["python", os.path.relpath(Path(script).resolve(), REPO), *out])


def lever_main(doc: str, levers: dict, config, run_one, argv=None):
    """`OUT NAME...` [--dry-run]: build each named lever's pipeline config with `config(name)` and, unless dry, run it with
    `run_one(out, name, cfg)` into OUT/<name>, printing its wall time."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the folder the levers' run folders go in (OUT/<name>)")
    ap.add_argument("names", nargs="+", choices=list(levers), metavar="NAME", help=", ".join(levers))
    ap.add_argument("--dry-run", action="store_true", help="build and check the configs and print them; run nothing")
    a = ap.parse_args(argv)
    if a.dry_run:
        for n in a.names:
            cfg = config(n); cfg.check(where=f"validation lever {n}")   # every stage's own config built: errors surface here
            print(f"# {n}\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return
    for name in a.names:
        t0 = time.time()
        run_one(a.out, name, config(name))
        print(f"lever {name}: done in {time.time() - t0:.0f} s", flush=True)
