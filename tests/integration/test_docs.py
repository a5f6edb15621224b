#!/usr/bin/env python3
"""Every option is documented: for each daemon, the long options in its
getopt table (the source), the option lines of its --help and the option
tags (.TP) of the OPTIONS section of its manual page are the same set, and
a short option has the same letter in --help and the page.

Usage: test_docs.py BINARY SOURCE.c PAGE.8 [BINARY SOURCE.c PAGE.8 ...]
"""
import re
import subprocess
import sys


def table_options(source):
    """Long names in the source's struct option table(s)."""
    text = open(source).read()
    return set(re.findall(r'\{\s*"([a-z][a-z-]*)",\s*(?:no|required|optional)_argument', text))


def help_options(binary):
    """{long: short or None} of the lines of --help that start with an option."""
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise AssertionError("%s --help: exit %d" % (binary, r.returncode))
    found = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s+(?:-([A-Za-z]), )?--([a-z][a-z-]*)", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def page_options(page):
    """{long: short or None} of the .TP tags in the page's OPTIONS section."""
    lines = open(page).read().splitlines()
    found = {}
    in_options = False
    for i, line in enumerate(lines):
        if line.startswith(".SH "):
            in_options = line.strip() == ".SH OPTIONS"
        if not in_options or line != ".TP" or i + 1 >= len(lines):
            continue
        tag = lines[i + 1].replace("\\-", "-")
        tag = re.sub(r"\\f[BIRP]", "", tag).replace('"', "")
        m = re.match(r"^\.[BIR]{1,2}\s+(?:-([A-Za-z])\s*,\s*)?--([a-z][a-z-]*)", tag)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        print(__doc__)
        sys.exit(2)
    failures = 0
    for binary, source, page in zip(args[0::3], args[1::3], args[2::3]):
        name = page.rsplit("/", 1)[-1]
        table = table_options(source)
        helped = help_options(binary)
        paged = page_options(page)
        if not table:
            print("FAIL %s: no option table found in %s" % (name, source))
            failures += 1
            continue
        for what, got in (("--help", set(helped)), ("the page", set(paged))):
            missing = sorted(table - got)
            extra = sorted(got - table)
            if missing or extra:
                failures += 1
                print("FAIL %s: %s lacks %s; has unknown %s" % (name, what, missing, extra))
        for opt in sorted(set(helped) & set(paged)):
            if helped[opt] != paged[opt]:
                failures += 1
                print("FAIL %s: --%s short option %s in --help, %s in the page"
                      % (name, opt, helped[opt], paged[opt]))
        print("%s: %d options checked" % (name, len(table)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
