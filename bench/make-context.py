#!/usr/bin/env python3
"""Write a build context: FILES small text files (1 to 8 KiB of word salad, 100 to a
directory under small/), one file of MIB MiB of random bytes (random.bin) and one of
MIB MiB of word-salad text (text.txt). The text is seeded, so runs are repeatable;
the random file comes from os.urandom.

Usage: make-context.py DIR FILES MIB"""
import os, random, sys

WORDS = ("layer manifest index blob digest config platform builder cache snapshot context "
         "registry push pull tag image container runtime mount overlay stage step copy run "
         "the a of and to in is that for on with as by at from this it be are was or "
         "alpha beta gamma delta epsilon zeta theta lambda sigma omega 0 1 2 3 42 1024").split()


def salad(rng, nbytes):
    out, n = [], 0
    while n < nbytes:
        line = " ".join(rng.choices(WORDS, k=rng.randint(6, 14))) + "\n"
        out.append(line); n += len(line)
    return "".join(out)[:nbytes].encode()


def main():
    root, files, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(6)
    for i in range(files):
        d = os.path.join(root, "small", f"{i // 100:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"file-{i:05d}.txt"), "wb") as f:
            f.write(salad(rng, rng.randint(1024, 8192)))
    with open(os.path.join(root, "random.bin"), "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    # Text in 4 MiB pieces, each a fresh salad, so the file does not repeat itself.
    with open(os.path.join(root, "text.txt"), "wb") as f:
        left = mib << 20
        while left:
            piece = salad(rng, min(left, 4 << 20))
            f.write(piece); left -= len(piece)


main()
