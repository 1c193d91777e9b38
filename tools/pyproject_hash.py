"""Print the sha256 of pyproject.toml's [project] tables: what the lock files are compiled from.

`make lock` writes it into requirements.lock's first line and `make install` compares, so a change
to the dependencies without `make lock` fails in one line. Only the [project...] tables count:
editing [tool.pytest...] does not invalidate the lock. Standard library only (no tomllib on 3.10).
"""
import hashlib
import sys


def project_tables(text):
    keep, lines = False, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            keep = stripped.startswith("[project")
        if keep and stripped and not stripped.startswith("#"):
            lines.append(stripped)
    return "\n".join(lines)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"
    with open(path, encoding="utf-8") as f:
        print(hashlib.sha256(project_tables(f.read()).encode()).hexdigest())
