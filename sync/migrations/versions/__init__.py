"""The migrations, one module per revision, numbered in order (a package so installs carry them)."""
