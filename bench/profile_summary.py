"""Where a py-spy profile's samples fall: the frames with the most samples of their
own, and the frames most often on the stack (their callees included).

    python -m bench.profile_summary FILE [--top N] [--match TEXT]

FILE holds collapsed stacks (`py-spy record -f raw`), one `frame;frame;... count`
a line. --match keeps only the stacks through a frame containing TEXT (e.g. a
function name), and gives its shares of those.
"""

import argparse
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int, match: str | None) -> str:
    own: Counter[str] = Counter()
    on_stack: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or (match and match not in stack):
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            on_stack[frame] += int(count)
    lines = [f"{total:,} samples{f' through {match!r}' if match else ''}", "-- own time"]
    lines += [f"{n / total:6.1%}  {frame[:150]}" for frame, n in own.most_common(top)]
    lines += ["-- on the stack"]
    lines += [f"{n / total:6.1%}  {frame[:150]}" for frame, n in on_stack.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match")
    args = parser.parse_args()
    print(summarise(args.file, args.top, args.match))


if __name__ == "__main__":
    main()
