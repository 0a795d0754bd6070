#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mmn-bench(1) from a page template and the program's own --help.

Usage: help2man.py TEMPLATE OUTPUT VERSION -- PROGRAM [ARGS...]

The template's line "@HELP@" becomes the --help text (verbatim), "@VERSION@"
the version: the options in the page are always the program's.
"""
import subprocess
import sys


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        sys.exit(__doc__)
    template, output, version, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
    help_text = subprocess.run(cmd + ["--help"], check=True, capture_output=True,
                               text=True).stdout
    if "usage:" not in help_text:
        sys.exit("help2man: %s --help printed no usage" % cmd[0])
    body = []
    for line in help_text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e")
        body.append("\\&" + line if line.startswith((".", "'")) else line)
    page = open(template).read().replace("@VERSION@", version)
    page = page.replace("@HELP@", ".nf\n" + "\n".join(body) + "\n.fi")
    open(output, "w").write(page)


if __name__ == "__main__":
    main()
